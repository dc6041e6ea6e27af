"""De-identification: report text and DICOM objects (PS3.15 Annex E, Basic Profile).

* :class:`TextRedactor` removes identifiers from free text printed in an anonymised
  report: the values of the CT header's text fields (PatientName and its components,
  PatientID, descriptions, ...), every file/folder path the case was loaded from (and
  the distinctive folder names in them), anything that looks like a path or a DICOM UID.
* :class:`DicomDeidentifier` applies the DICOM PS3.15 E.1 Basic Application
  Confidentiality Profile to a dataset IRPlan writes (SEG, SR, Encapsulated PDF, SC):
  attributes of Table E.1-1 are removed (X), emptied (Z) or given dummy values (D);
  every UID that is not a standard DICOM UID is replaced (U) by a new one, the same input
  UID always giving the same output within one export and, with the installation secret
  (:mod:`irplan.io.pseudonym`), across exports; private elements are removed; any other
  person name is emptied and any other date/time removed. PatientIdentityRemoved is
  "YES" and DeidentificationMethod(+CodeSequence, DCM 113100) says what was done.
  PatientID becomes the keyed pseudonym (or empty without a secret).

No library in the environment does this (pydicom 3 and highdicom have no de-identifier);
``deid``/``dicognito`` were not added as dependencies: IRPlan only needs the profile on
objects it builds itself, which the table below covers, and a test checks every keyword
of it against pydicom's data dictionary.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID_dictionary

from irplan.io.pseudonym import Pseudonymizer, installation_pseudonymizer

REMOVED = "[removed]"

# ----------------------------------------------------------------------------- text
# Folder/file names that are IRPlan's or the system's own, never redacted on their own
# (they still disappear as part of a full path).
_GENERIC_PARTS = {
    "home", "tmp", "temp", "var", "usr", "mnt", "media", "data", "work", "users", "user",
    "shared", "planning", "intraop", "followup", "follow-up", "masks", "mask", "seg",
    "dicom", "dicomdir", "ct", "case", "cases", "images", "image", "series", "study",
    "plan", "plans", "tumor", "tumour", "liver", "portal_vein", "hepatic_vein", "bone",
    "lung", "body", "artery", "bile_duct", "ablation_zone", "predicted_zone", "irplan",
}
# IRPlan's own name is printed on every page, so it identifies no one: never redacted on its
# own (the demo phantom's patient is PHANTOM^IRPLAN, and the report's "differ from
# IRPlan's" read "differ from [removed]'s")
_OWN_NAME = "irplan"
_TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "UI", "DA", "DT", "TM", "AE"}
# Text attributes whose values are a technical vocabulary, not a person or a visit: left out
# of the identifiers, else every "HU" of a report (RescaleType) became "[removed]".
_NOT_IDENTIFYING = {"RescaleType", "ConvolutionKernel", "Manufacturer",
                    "ManufacturerModelName", "SoftwareVersions", "LossyImageCompressionMethod",
                    "FilterType", "ContrastBolusAgent", "ContrastBolusRoute"}
_UID_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}(?![\w.])")
# a token with a path separator that starts like a path (/x, ~/x, ./x, C:\x) or has two
# separators (a/b/c); "V/cm" and "ml/s" stay
_PATH_RE = re.compile(r"(?:(?<=\s)|^|(?<=[('\"\[]))(?:[A-Za-z]:[\\/]|~?[\\/]|\.{1,2}[\\/]"
                      r"|[^\s\\/'\"()\[\]]+[\\/][^\s\\/'\"()\[\]]+[\\/])[^\s'\"()\[\]]*")
_FILE_RE = re.compile(r"[^\s'\"()\[\]/\\]+\.(?:nii\.gz|nii|nrrd|nhdr|dcm|dicom|json|csv|"
                      r"png|pdf|ima|img|mha|mhd|gz)\b", re.IGNORECASE)


class TextRedactor:
    """Replace identifiers in free text by ``[removed]``.

    ``values``: exact strings to remove (longest first, case-insensitive, as whole
    words); ``paths``: files/folders whose full path, name and distinctive parent names
    are removed. Generic rules remove any UID-like token, path-like token and file name.
    """

    def __init__(self, values: Iterable[str] = (), paths: Iterable[str | Path] = ()) -> None:
        words: set[str] = set()
        for v in values:
            v = str(v or "").strip()
            if len(v) >= 2 and v.lower() != _OWN_NAME:
                words.add(v)
        for p in paths:
            s = str(p or "").strip()
            if not s:
                continue
            cands = {s}
            try:
                cands.add(str(Path(s).expanduser().resolve()))
            except (OSError, RuntimeError, ValueError):
                pass
            for c in cands:
                words.add(c)
                for part in Path(c).parts:
                    part = part.strip("/\\")
                    low = part.lower()
                    stem = low.split(".")[0]
                    if len(part) >= 3 and low not in _GENERIC_PARTS \
                            and stem not in _GENERIC_PARTS:
                        words.add(part)
        self._words = sorted(words, key=len, reverse=True)
        self._word_re = (re.compile("|".join(
            rf"(?<!\w){re.escape(w)}(?!\w)" for w in self._words), re.IGNORECASE)
            if self._words else None)

    def __call__(self, text: Any) -> str:
        s = "" if text is None else str(text)
        if not s:
            return s
        if self._word_re is not None:
            s = self._word_re.sub(REMOVED, s)
        s = _PATH_RE.sub(REMOVED, s)
        s = _FILE_RE.sub(REMOVED, s)
        return _UID_RE.sub(REMOVED, s)


def header_identifiers(header: Any) -> list[str]:
    """Every text value of a DICOM header (pydicom Dataset or mapping) that could
    identify: person names and their components, IDs, descriptions, UIDs, dates."""
    out: list[str] = []
    if header is None:
        return out
    if isinstance(header, Dataset):
        items = []
        for elem in header.iterall():
            if elem.keyword in _NOT_IDENTIFYING:
                continue
            if elem.VR in _TEXT_VRS and elem.value not in (None, ""):
                vals = elem.value if elem.VM > 1 else [elem.value]
                items.extend((elem.VR, v) for v in vals)
    else:
        items = []
        for k, v in dict(header).items():
            if k in _NOT_IDENTIFYING:
                continue
            try:
                vr = dictionary_VR(tag_for_keyword(k)) if tag_for_keyword(k) else "LO"
            except KeyError:
                vr = "LO"
            if vr in _TEXT_VRS and v not in (None, ""):
                items.append((vr, v))
    for vr, v in items:
        s = str(v).strip()
        if not s:
            continue
        out.append(s)
        if vr == "PN":
            out.append(s.replace("^", " ").strip())
            out.extend(c for c in re.split(r"[\^=\s,]+", s) if len(c) >= 2)
    return out


# ----------------------------------------------------------------------------- DICOM
# PS3.15 Table E.1-1 (Basic Profile). X remove, Z zero length, D dummy, U new UID
# (U is applied to every non-standard UID anyway). Where the table gives X/Z or X/D the
# weaker action is used for attributes IRPlan's objects carry as Type 2/1.
_X = """
AcquisitionComments AcquisitionContextSequence AcquisitionDate
AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription AcquisitionTime
ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID AdmittingDate
AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime Allergies
Arbitrary AuthorObserverSequence BranchOfService CassetteID
CommentsOnThePerformedProcedureStep ConfidentialityConstraintOnPatientDataDescription
ContributionDescription CountryOfResidence CurrentPatientLocation
CustodialOrganizationSequence DataSetTrailingPadding DateOfLastCalibration
DateOfSecondaryCapture DerivationDescription DetectorID DeviceSerialNumber
DigitalSignaturesSequence DischargeDiagnosisDescription DistributionAddress
DistributionName EthnicGroup FrameComments GantryID GeneratorID HumanPerformerName
HumanPerformerOrganization IconImageSequence IdentifyingComments ImageComments
ImagePresentationComments ImagingServiceRequestComments Impressions
InstanceCreationDate InstanceCreationTime InstitutionAddress
InstitutionalDepartmentName InstitutionName InsurancePlanIdentification
IntendedRecipientsOfResultsIdentificationSequence InterpretationApproverSequence
InterpretationAuthor InterpretationDiagnosisDescription InterpretationIDIssuer
InterpretationRecorder InterpretationText InterpretationTranscriber
IssuerOfAdmissionID IssuerOfPatientID IssuerOfServiceEpisodeID LastMenstrualDate
MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
ModifiedImageDescription ModifyingDeviceID NameOfPhysiciansReadingStudy
NamesOfIntendedRecipientsOfResults Occupation OperatorsName OrderCallbackPhoneNumber
OrderEnteredBy OrderEntererLocation OriginalAttributesSequence OtherPatientIDs
OtherPatientIDsSequence OtherPatientNames ParticipantSequence PatientAddress PatientAge
PatientBirthName PatientBirthTime PatientComments PatientInstitutionResidence
PatientInsurancePlanCodeSequence PatientMotherBirthName
PatientPrimaryLanguageCodeSequence PatientReligiousPreference PatientSexNeutered
PatientSize PatientState PatientTelecomInformation PatientTelephoneNumbers
PatientTransportArrangements PatientWeight PerformedLocation
PerformedProcedureStepDescription PerformedProcedureStepEndDate
PerformedProcedureStepEndTime PerformedProcedureStepID PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedStationAETitle
PerformedStationGeographicLocationCodeSequence PerformedStationName
PerformingPhysicianIdentificationSequence PerformingPhysicianName PersonAddress
PersonTelephoneNumbers PhysicianApprovingInterpretation PhysiciansOfRecord
PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence
PlateID PreMedication PregnancyStatus ProtocolName ReasonForStudy
ReasonForTheImagingServiceRequest ReferencedDigitalSignatureSequence
ReferencedPatientAliasSequence ReferencedPatientSequence
ReferencedSOPInstanceMACSequence ReferringPhysicianAddress
ReferringPhysicianIdentificationSequence ReferringPhysicianTelephoneNumbers
RegionOfResidence RequestAttributesSequence RequestedContrastAgent
RequestedProcedureComments RequestedProcedureDescription RequestedProcedureID
RequestedProcedureLocation RequestingPhysician RequestingService ResultsComments
ResultsDistributionListSequence ResultsIDIssuer ReviewerName
ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
ScheduledProcedureStepDescription ScheduledProcedureStepEndDate
ScheduledProcedureStepEndTime ScheduledProcedureStepLocation
ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime
ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence
ScheduledStationName ScheduledStudyLocation ScheduledStudyLocationAETitle SeriesDate
SeriesDescription SeriesTime ServiceEpisodeDescription ServiceEpisodeID SmokingStatus
SpecialNeeds StationName StudyComments StudyDescription StudyIDIssuer TextComments
TextString TimeOfLastCalibration TimeOfSecondaryCapture TimezoneOffsetFromUTC
TopicAuthor TopicKeywords TopicSubject TopicTitle VerifyingOrganization VisitComments
"""
_Z = """
AccessionNumber AcquisitionDateTime ContentCreatorName ContrastBolusAgent
FillerOrderNumberImagingServiceRequest PatientBirthDate PatientName PatientSex
PlacerOrderNumberImagingServiceRequest ReferencedPerformedProcedureStepSequence
ReferencedStudySequence ReferringPhysicianName StudyDate StudyID StudyTime
VerifyingObserverIdentificationCodeSequence
"""
# Type 1 dates/times of IRPlan's objects (SEG multi-frame module): dummy values (D).
_D = {"ContentDate": "19000101", "ContentTime": "000000", "VerifyingObserverName": "REMOVED"}
BASIC_PROFILE: dict[str, str] = {**{k: "X" for k in _X.split()},
                                 **{k: "Z" for k in _Z.split()},
                                 **{k: "D" for k in _D}}
# UIDs that are not instance identifiers (kept as they are)
_KEEP_UID_KEYWORDS = {"ImplementationClassUID", "TransferSyntaxUID", "SOPClassUID",
                      "MediaStorageSOPClassUID", "ReferencedSOPClassUID",
                      "AffectedSOPClassUID", "RequestedSOPClassUID", "CodingSchemeUID",
                      "ContextGroupExtensionCreatorUID", "MappingResourceUID",
                      "PrivateInformationCreatorUID", "ReferencedTransferSyntaxUID"}
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
METHOD_TEXT = "DICOM PS3.15 E.1 Basic Profile (IRPlan)"


class DicomDeidentifier:
    """Applies the Basic Profile to datasets; one instance per export keeps the UID
    mapping consistent across the objects it writes (SEG references, PDF, SC)."""

    def __init__(self, pseudonymizer: Pseudonymizer | None = None) -> None:
        self.pseudonymizer = pseudonymizer or installation_pseudonymizer()
        # without an installation secret: consistent within this export only
        self.salt = "" if self.pseudonymizer.available else os.urandom(16).hex()
        self.uid_map: dict[str, str] = {}
        self._mapped: set[str] = set()

    def new_uid(self, uid: str) -> str:
        uid = str(uid).strip()
        if uid in self._mapped:  # already a new UID (an element shared between objects)
            return uid
        if uid not in self.uid_map:
            self.uid_map[uid] = self.pseudonymizer.uid(uid, self.salt)
            self._mapped.add(self.uid_map[uid])
        return self.uid_map[uid]

    def patient_id(self, source_patient_id: str) -> str:
        p = self.pseudonymizer.pseudonym(source_patient_id)
        return f"IRPLAN-{p}" if p else ""

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (file meta included); returns it."""
        source_pid = str(ds.get("PatientID", "") or "")
        # highdicom shares element objects with the source CT datasets: work on copies so
        # the source (and the next object exported from it) is never changed
        for elem in list(ds):
            ds[elem.tag] = copy.deepcopy(elem)
        ds.remove_private_tags()
        self._clean(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.new_uid(meta.MediaStorageSOPInstanceUID)
        for kw in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber"):
            setattr(ds, kw, "")  # Type 2 of the patient and study modules: present, empty
        ds.PatientID = self.patient_id(source_pid)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [  # LO, VM 1-n: one statement per value
            METHOD_TEXT, "PatientID: " + ("keyed pseudonym (HMAC-SHA256)" if ds.PatientID
                                          else "removed"), "UIDs replaced"]
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = DicomSequence([code])
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        return ds

    def _clean(self, ds: Dataset) -> None:
        for elem in list(ds):
            kw = elem.keyword
            action = BASIC_PROFILE.get(kw)
            if action == "X":
                del ds[elem.tag]
                continue
            if action == "Z":
                elem.value = DicomSequence([]) if elem.VR == "SQ" else ""
                continue
            if action == "D":
                elem.value = _D[kw]
                continue
            if elem.VR == "SQ":
                for item in elem.value:
                    self._clean(item)
            elif elem.VR == "UI":
                if kw in _KEEP_UID_KEYWORDS or elem.value in (None, ""):
                    continue
                vals = list(elem.value) if elem.VM > 1 else [elem.value]
                new = [v if str(v) in UID_dictionary else self.new_uid(v) for v in vals]
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR == "PN":
                elem.value = ""
            elif elem.VR in ("DA", "DT", "TM"):
                del ds[elem.tag]


def unknown_profile_keywords() -> list[str]:
    """Keywords of :data:`BASIC_PROFILE` that pydicom does not know (a test keeps it [])."""
    return [k for k in BASIC_PROFILE if tag_for_keyword(k) is None]
