"""Privacy by default (issue 13, cause 3): what a reader of a report, a PACS receiving an
export, a spreadsheet opening a results CSV, or a DICOMDIR reader gets to see or do.

- the default report (``irplan report``) holds no name, ID, description, UID, file or
  folder name of a CT whose every text field carries the patient's name, stored in a
  folder named after the patient; the patient appears as a keyed pseudonym (HMAC with a
  0600 per-installation secret) and an unkeyed hash of the ID is nowhere;
- needle names are printed as text: ``<img>`` embeds no file, ``<a href>`` makes no
  link, malformed markup does not crash;
- ``irplan export --anonymize`` writes DICOM objects with the PS3.15 Basic Profile
  applied (no identifier in any element, new UIDs mapped consistently between the SEG and
  the PDF, PatientIdentityRemoved YES), an embedded PDF without identifiers; the default
  export keeps the patient module;
- DICOMDIR references off the media are refused; results CSV cells cannot be formulas.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from irplan.io.dicom_write import write_ct_series
from irplan.io.masks import write_volume_file
from irplan.io.plan_file import save_plan
from irplan.planning.plan import ImageRef, Needle, Plan, ThermalParams
from irplan.planning.volume import Volume

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext (poppler-utils) is not installed")

NAME = "Waylon^Smithers"
PID = "12345678"                 # an 8-digit MRN: an unkeyed hash is reversed in minutes
FOLDER = "Waylon_Smithers_1961"
SECRETS = ["Waylon", "Smithers", PID, FOLDER, "Smithers liver", "Smithers portal",
           "19610315", "ACC-SMI-77"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irplan.app.cli", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=dict(os.environ))


def _pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    return " ".join(out.split())


@pytest.fixture(scope="module")
def patient_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 48^3 CT (2 mm) of a named patient in a folder named after him; a thermal plan
    with one antenna into a tumour sphere, a liver mask, and a broken mask file whose
    load error (with its path) would reach the report's notes."""
    root = tmp_path_factory.mktemp("privacy") / FOLDER
    n, sp = 48, 2.0
    origin = np.full(3, -(n - 1) * sp / 2)
    ct = Volume(np.full((n, n, n), 60.0, np.float32), origin, np.full(3, sp))
    pts = ct.voxel_centres_lps()
    r = np.linalg.norm(pts, axis=-1)
    files = write_ct_series(ct, root / "ct", patient_name=NAME, patient_id=PID,
                            study_description="Smithers liver",
                            series_description="Smithers portal venous",
                            accession_number="ACC-SMI-77",
                            extra={"PatientBirthDate": "19610315",
                                   "InstitutionName": "Springfield Nuclear Clinic",
                                   "ReferringPhysicianName": "Hibbert^Julius"})
    ds = dcmread(files[0], stop_before_pixels=True)
    masks = root / "masks"
    tumor = ct.with_array((r <= 8.0).astype(np.uint8))
    write_volume_file(tumor, masks / "tumor.nii.gz")
    write_volume_file(ct.with_array((r <= 30.0).astype(np.uint8)), masks / "liver.nii.gz")
    (masks / "Smithers_vessels.nii.gz").write_bytes(b"not a nifti file")
    plan = Plan("MWA", ImageRef(str(root / "ct"), str(ds.SeriesInstanceUID),
                                str(ds.FrameOfReferenceUID)), 5.0,
                [Needle("mwa-14g", [0.0, 0.0, 4.0], [0.0, -40.0, 60.0], None, "Smithers-N1")],
                thermal=ThermalParams(power_w=100.0, time_s=300.0),
                structures={"tumor": str(masks / "tumor.nii.gz"),
                            "liver": str(masks / "liver.nii.gz"),
                            "portal_vein": str(masks / "Smithers_vessels.nii.gz")})
    plan_path = save_plan(plan, root / f"{FOLDER}.irplan.json")
    del plan.structures["portal_vein"]      # export refuses a broken structure
    export_plan = save_plan(plan, root / f"{FOLDER}-export.irplan.json")
    return {"root": root, "plan": plan_path, "export_plan": export_plan, "ds": ds,
            "files": files}


def _leaks(text: str, case: dict) -> list[str]:
    ds = case["ds"]
    words = SECRETS + [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                       str(ds.FrameOfReferenceUID), str(ds.SOPInstanceUID), "Springfield",
                       "Hibbert", str(case["root"].parent),
                       hashlib.sha256(PID.encode()).hexdigest()[:10]]
    return [w for w in words if w.lower() in text.lower()]


@needs_pdftotext
def test_default_report_shows_no_identifier(patient_case: dict, tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    res = _cli("report", str(patient_case["plan"]), "--pdf", str(pdf), "--no-pictures")
    assert res.returncode == 0, res.stderr
    text = _pdf_text(pdf)
    assert _leaks(text, patient_case) == []
    # the keyed pseudonym is printed, with what it is; the key file is private
    from irplan.io.pseudonym import KEY_FILE, config_dir, installation_pseudonymizer

    pseudo = installation_pseudonymizer().pseudonym(PID)
    assert len(pseudo) == 16 and pseudo in text and "HMAC-SHA256" in text
    key = config_dir() / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # the figures are still there: needle tip and the broken mask is reported, nameless
    assert "0.0, 0.0, 4.0" in text
    assert "[removed]" in text
    # with --patient-data the identity is printed
    pdf2 = tmp_path / "r2.pdf"
    res = _cli("report", str(patient_case["plan"]), "--pdf", str(pdf2), "--no-pictures",
               "--no-compute", "--patient-data")
    assert res.returncode == 0, res.stderr
    assert "Waylon" in _pdf_text(pdf2) and PID in _pdf_text(pdf2)


def test_pseudonym_is_keyed_and_absent_without_a_secret(tmp_path: Path, monkeypatch) -> None:
    from irplan.io.pseudonym import installation_pseudonymizer

    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "a"))
    a = installation_pseudonymizer().pseudonym(PID)
    assert a == installation_pseudonymizer().pseudonym(PID)          # stable
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "b"))
    assert installation_pseudonymizer().pseudonym(PID) != a          # other installation
    assert hashlib.sha256(PID.encode()).hexdigest()[:16] != a        # not a plain hash
    # a config folder that cannot be created: no pseudonym, and the reason
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "file" / "cfg"))
    pz = installation_pseudonymizer()
    assert not pz.available and pz.pseudonym(PID) == "" and "no pseudonym" in pz.status
    # a damaged key is not replaced (that would change every pseudonym)
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "c"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "pseudonym.key").write_text("garbage")
    assert not installation_pseudonymizer().available
    assert (tmp_path / "c" / "pseudonym.key").read_text() == "garbage"


@needs_pdftotext
@pytest.mark.parametrize("name", [
    '<img src="{png}" width="200" height="200"/>',
    '<a href="https://example.invalid/x">click</a>',
    '<b>unclosed <i>markup',
    '<font name="/etc/passwd">x</font> & &amp; &#0; \x1b[31mred',
])
def test_needle_names_are_text_not_markup(tmp_path: Path, name: str) -> None:
    from PIL import Image

    from irplan.io.report_content import gather_report_content
    from irplan.io.report_pdf import write_report_pdf

    png = tmp_path / "local.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(png)
    name = name.format(png=png)
    plan = Plan("MWA", ImageRef("ct", ""), 5.0,
                [Needle("mwa-14g", [0.0, 0.0, 0.0], [0.0, -50.0, 10.0], None, name)])
    rc = gather_report_content(plan, include_patient_data=True)  # no redaction: raw names
    pdf = write_report_pdf(rc, tmp_path / "r.pdf")
    raw = pdf.read_bytes()
    assert b"/Subtype /Image" not in raw and b"/URI" not in raw and b"/Link" not in raw
    text = _pdf_text(pdf)
    visible = " ".join(name.replace("\x1b", "").split())
    assert visible.split(">")[0] in text          # the markup is printed literally


def test_export_default_keeps_patient_anonymize_applies_basic_profile(
        patient_case: dict, tmp_path: Path) -> None:
    ds = patient_case["ds"]
    keep, anon = tmp_path / "keep", tmp_path / "anon"
    res = _cli("export", str(patient_case["export_plan"]), "--out", str(keep), "--seg", "--no-zone")
    assert res.returncode == 0, res.stderr
    seg = dcmread(keep / "structures_seg.dcm")
    assert seg.PatientID == PID and str(seg.PatientName) == NAME
    assert seg.StudyInstanceUID == ds.StudyInstanceUID    # files into the patient's study

    res = _cli("export", str(patient_case["export_plan"]), "--out", str(anon), "--seg", "--pdf",
               "--no-zone", "--no-pictures", "--anonymize")
    assert res.returncode == 0, res.stderr
    written = sorted(p for p in anon.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"structures_seg.dcm", "report_pdf.dcm"}
    for p in written:                         # file names carry nothing either
        assert _leaks(p.name, patient_case) == []
    objs = [dcmread(p) for p in written if p.suffix == ".dcm"]
    for obj in objs:
        assert obj.PatientIdentityRemoved == "YES"
        assert "Basic Profile" in obj.DeidentificationMethod[0]
        assert obj.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert str(obj.PatientName) == "" and obj.PatientID.startswith("IRPLAN-")
        # no identifying value anywhere in the dataset (all elements, all sequences)
        values = " ".join(str(e.value) for e in obj.iterall() if e.VR != "OB"
                          and e.keyword not in ("PixelData", "EncapsulatedDocument"))
        assert _leaks(values, patient_case) == [], obj.SOPClassUID
        assert str(ds.StudyDate) not in values
        assert not any(e.tag.is_private for e in obj.iterall())
        assert obj.file_meta.MediaStorageSOPInstanceUID == obj.SOPInstanceUID
    # one new study for all objects, the same mapping in SEG references and PDF
    assert len({o.StudyInstanceUID for o in objs}) == 1
    assert objs[0].StudyInstanceUID != ds.StudyInstanceUID
    seg = next(o for o in objs if o.Modality == "SEG")
    doc = next(o for o in objs if o.Modality == "DOC")
    assert seg.FrameOfReferenceUID != ds.FrameOfReferenceUID
    assert (seg.ReferencedSeriesSequence[0].SeriesInstanceUID
            == doc.ReferencedSeriesSequence[0].SeriesInstanceUID != ds.SeriesInstanceUID)
    # the embedded PDF: no identifier in its text or metadata
    if shutil.which("pdftotext"):
        emb = tmp_path / "emb.pdf"
        emb.write_bytes(bytes(doc.EncapsulatedDocument)[:int(doc.EncapsulatedDocumentLength)])
        text = _pdf_text(emb)
        assert "anonymised" in text and _leaks(text, patient_case) == []
        assert not re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", text)  # no creation date
    # a PDF made elsewhere cannot be vouched for: refused, one line, exit 2
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4 Waylon Smithers")
    res = _cli("export", str(patient_case["export_plan"]), "--out", str(tmp_path / "x"), "--pdf",
               str(other), "--anonymize")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "report_pdf.dcm").exists()


def test_secondary_capture_deidentified_in_memory(patient_case: dict, tmp_path: Path) -> None:
    """The SC writer with the de-identifier (the API the GUI can use): no identifier in
    the file, and the source CT datasets are left untouched."""
    from PIL import Image

    from irplan.io.anonymize import DicomDeidentifier
    from irplan.io.dicom_export import export_secondary_capture, load_source_series

    src = load_source_series(patient_case["root"] / "ct")
    png = tmp_path / "shot.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(png)
    deid = DicomDeidentifier()
    sc = dcmread(export_secondary_capture(src, png, tmp_path / "sc.dcm", deidentify=deid))
    values = " ".join(str(e.value) for e in sc.iterall() if e.keyword != "PixelData")
    assert _leaks(values, patient_case) == [] and sc.PatientIdentityRemoved == "YES"
    assert sc.StudyInstanceUID == deid.new_uid(patient_case["ds"].StudyInstanceUID)
    assert str(src.first.PatientName) == NAME                    # source unchanged
    assert src.first.StudyInstanceUID == patient_case["ds"].StudyInstanceUID


@pytest.mark.parametrize("text,gone,kept", [
    ("/data/Waylon_Smithers/ct/IM0001.dcm: unreadable", ["Waylon", "IM0001"], ["unreadable"]),
    ("C:\\PACS\\Smithers W\\liver.nii.gz missing", ["Smithers", "PACS"], ["missing"]),
    ("~/cases/x/plan.irplan.json: bad", ["cases"], ["bad"]),
    ("mask Smithers_liver.nrrd is empty", ["Smithers_liver"], ["mask", "is empty"]),
    ("series 1.2.840.113619.2.55.3.604688 not found", ["113619"], ["series", "not found"]),
    ("1500 V/cm over 15.2 mm, 0.1.0", [], ["1500 V/cm", "15.2 mm", "0.1.0"]),
    ("patient WAYLON smithers", ["WAYLON", "smithers"], ["patient"]),
])
def test_text_redactor(text: str, gone: list[str], kept: list[str]) -> None:
    from irplan.io.anonymize import REMOVED, TextRedactor, header_identifiers

    red = TextRedactor(header_identifiers({"PatientName": NAME, "PatientID": PID}),
                       ["/data/Waylon_Smithers/ct"])
    out = red(text)
    assert all(g not in out for g in gone), out
    assert all(k in out for k in kept), out
    assert (REMOVED in out) == bool(gone)


def test_basic_profile_table_uses_known_keywords() -> None:
    from irplan.io.anonymize import BASIC_PROFILE, unknown_profile_keywords

    assert unknown_profile_keywords() == []
    for kw in ("PatientName", "PatientBirthDate", "StudyDescription", "SeriesDescription",
               "InstitutionName", "OtherPatientIDs", "AccessionNumber"):
        assert kw in BASIC_PROFILE


def test_dicomdir_references_stay_on_the_media(patient_case: dict, tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    from irplan.io.dicomdir import dicomdir_files

    outside = tmp_path / "outside.dcm"
    shutil.copy(patient_case["files"][0], outside)
    media = tmp_path / "media"
    (media / "IMG").mkdir(parents=True)
    shutil.copy(patient_case["files"][1], media / "IMG" / "I1")

    def dicomdir(ref: str | list[str]) -> Path:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        r = Dataset()
        r.DirectoryRecordType = "IMAGE"
        r.ReferencedFileID = ref
        ds.DirectoryRecordSequence = Sequence([r])
        p = media / "DICOMDIR"
        ds.save_as(p, enforce_file_format=True)
        return p

    assert dicomdir_files(dicomdir(["IMG", "I1"]))[0] == [media / "IMG" / "I1"]
    for bad in (["..", "outside.dcm"], str(outside), ["IMG", "..", "..", "outside.dcm"]):
        p = dicomdir(bad)
        from irplan.planning.errors import InputError

        with pytest.raises(InputError, match="DICOMDIR") as exc:
            dicomdir_files(p)
        assert str(p) in str(exc.value) and "outside the media" in str(exc.value)
    res = _cli("info", str(p))
    assert res.returncode == 2 and "outside the media" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("cell,want", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("-3.5", "-3.5"), ("+2", "+2"), ("1e-3", "1e-3"), ("case-1", "case-1"), ("", ""),
])
def test_csv_cells_are_neutralised(cell: str, want: str) -> None:
    from irplan.io.csv_safe import safe_cell

    assert safe_cell(cell) == want
    assert safe_cell(-3.5) == -3.5 and safe_cell(None) is None


def test_evaluate_batch_csv_has_no_formula(tmp_path: Path) -> None:
    import csv

    cohort = tmp_path / "cohort.csv"
    cohort.write_text("case_id,planning,followup,tumor,ablation\n"
                      '"=HYPERLINK(""http://evil"",""x"")",a,b,c.nii.gz,d.nii.gz\n'
                      "@cmd,a,b,c.nii.gz,d.nii.gz\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    res = _cli("evaluate-batch", str(cohort), "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr            # both rows fail (no files)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["case_id"] for r in rows] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'@cmd"]
    for r in rows:
        for v in r.values():
            assert not v or v[0] not in "=+-@\t\r" or _is_number(v)


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False



def test_technical_vocabulary_is_not_an_identifier() -> None:
    """A CT header's RescaleType 'HU' (and kernel, manufacturer) is not an identifier: an
    anonymised report keeps "41 HU" while the patient's name and ID go."""
    from pydicom.dataset import Dataset

    from irplan.io.anonymize import REMOVED, TextRedactor, header_identifiers

    ds = Dataset()
    ds.PatientName = NAME
    ds.PatientID = PID
    ds.RescaleType = "HU"
    ds.ConvolutionKernel = "B30f"
    ds.Manufacturer = "SIEMENS"
    red = TextRedactor(header_identifiers(ds), [])
    out = red(f"ROI mean 41.2 HU (kernel B30f, SIEMENS) of {NAME} {PID}")
    assert "41.2 HU" in out and "B30f" in out and "SIEMENS" in out, out
    assert PID not in out and REMOVED in out, out


def test_program_name_in_a_patient_name_is_kept_in_report_text() -> None:
    """The demo phantom's patient is PHANTOM^IRPLAN: the report's own words "IRPlan's"
    stay (they read "[removed]'s"), the name and the ID still go."""
    from pydicom.dataset import Dataset

    from irplan.io.anonymize import REMOVED, TextRedactor, header_identifiers

    ds = Dataset()
    ds.PatientName = "PHANTOM^IRPLAN"
    ds.PatientID = "IRPLAN-PH0000"
    red = TextRedactor(header_identifiers(ds), ["/root/.cache/irplan/demo/planning"])
    out = red("solver differs from IRPlan's; patient PHANTOM^IRPLAN (IRPLAN-PH0000), "
              "Phantom")
    assert "from IRPlan's;" in out, out
    assert "PHANTOM" not in out.upper() and "PH0000" not in out, out
    assert out.count(REMOVED) == 3, out

