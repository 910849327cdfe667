"""New DICOM UIDs, consistent across every object of a study.

:class:`UIDMap` maps each original instance UID (study, series, SOP instance,
frame of reference, ...) to a new one, the same new UID wherever the original
appears. Because every object of a study is remapped through one map, every
reference between them (ContourImageSequence, ReferencedFrameOfReference,
ReferencedRTPlan, ReferencedStructureSet, FrameOfReferenceUID, ...) stays
consistent without having to know each reference attribute.

With a secret ``salt`` the new UIDs are deterministic (the same input and
salt always give the same output, for example across several runs over a
cohort); without one they are random: each map draws a secret of its own
(so a copy of the map in a forked child gives the same new UIDs as the
map it was copied from, and no other map does).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Dict, Optional

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

#: UIDs defined by the DICOM standard itself (SOP classes, transfer syntaxes,
#: coding schemes, ...) start with this root and are never remapped.
DICOM_ROOT = "1.2.840.10008."

#: UI attributes that name a class or a scheme, not an instance.
NOT_INSTANCE_UIDS = {
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "CodingSchemeUID",
    "ContextGroupExtensionCreatorUID",
    "PrivateInformationCreatorUID",
    "TemplateExtensionCreatorUID",
    "MappingResourceUID",
    "ContextUID",
    "CodingSchemeRegistry",
}


def is_instance_uid_keyword(keyword: str) -> bool:
    """True for UI attributes that identify an instance (remapped by the writer)."""
    return bool(keyword) and not keyword.endswith("ClassUID") and keyword not in NOT_INSTANCE_UIDS


def deterministic_uid(uid: str, salt: str) -> str:
    """A UID under the 2.25 root derived from ``uid`` with a keyed hash
    (HMAC-SHA256 keyed by ``salt``): the same pair always gives the same UID,
    and without the salt the original cannot be recovered."""
    digest = hmac.new(salt.encode("utf-8"), uid.encode("utf-8"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


class UIDMap:
    """Original instance UID -> new UID, one-to-one and consistent."""

    def __init__(self, salt: Optional[str] = None) -> None:
        self.salt = salt
        # without a salt: a random secret of this map's own, so that its new UIDs are random (unlinkable across
        # runs) yet the same in a forked child that writes part of the study through a copy of this map
        self._key = salt if salt is not None else secrets.token_hex(32)
        self._map: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, uid: str) -> bool:
        return uid in self._map

    def items(self):
        return self._map.items()

    def map(self, uid: str) -> str:
        """New UID for ``uid`` (standard-defined UIDs are returned unchanged)."""
        uid = str(uid).strip()
        if not uid or uid.startswith(DICOM_ROOT):
            return uid
        new = self._map.get(uid)
        if new is None:
            new = deterministic_uid(uid, self._key)
            self._map[uid] = new
        return new

    def remap_dataset(self, ds: Dataset) -> None:
        """Replace every instance UID in ``ds`` (and its sequences, and its
        file meta) with its mapped value, in place.

        Only UI and SQ elements are decoded; everything else (contour
        coordinates, pixel data) stays raw, which keeps this fast.
        """
        for raw in ds.elements():
            tag = raw.tag
            vr = raw.VR
            if vr is None:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    continue
            if vr == "SQ":
                for item in ds[tag].value:
                    self.remap_dataset(item)
            elif vr == "UI":
                if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
                    self._remap_raw(ds, raw)
                    continue
                elem = ds[tag]
                if not is_instance_uid_keyword(elem.keyword) or elem.value in (None, ""):
                    continue
                if elem.VM > 1:
                    elem.value = [self.map(v) for v in elem.value]
                else:
                    elem.value = self.map(elem.value)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.map(meta.MediaStorageSOPInstanceUID)

    def _remap_raw(self, ds: Dataset, raw: RawDataElement) -> None:
        """Remap an undecoded UI element without decoding it through pydicom
        (no value objects, no validation): the new value is stored undecoded too."""
        if not is_instance_uid_keyword(keyword_for_tag(raw.tag)) or not raw.value:
            return
        text = raw.value.decode("ascii", errors="replace").rstrip("\x00 ")
        if not text:
            return
        new = "\\".join(self.map(v) for v in text.split("\\")).encode("ascii")
        if len(new) % 2:
            new += b"\x00"
        ds[raw.tag] = RawDataElement(raw.tag, "UI", len(new), new, 0, raw.is_implicit_VR, raw.is_little_endian)
