"""DICOM decompression bombs for the bounded-decoding tests (issue 14, item 1).

``deflate_bomb`` writes a Digital X-Ray image in Deflated Explicit VR Little Endian whose
16384 x 16384 all-zero pixels (512 MiB at 16 bits, 1 GiB at 32) deflate to about 0.5 MB (1 MB).
The pixels are streamed into the compressor a block at a time, so building one costs a few
megabytes, never the decoded size; the bytes are cached per process (a second or two each).
"""

from __future__ import annotations

import functools
import io
import zlib

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, DigitalXRayImageStorageForPresentation, generate_uid

BOMB_SIDE = 16384
_BLOCK = 16 * 1024**2


def _header(rows: int, columns: int, bits: int, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["bomb-study", sop_uid])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bomb-series", sop_uid])
    ds.PatientName = "BOMB^DECOMPRESSION"
    ds.PatientID = "BOMB0001"
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    return ds


@functools.cache
def deflate_bomb(
    bits: int = 16, *, side: int = BOMB_SIDE, seed: str = "bomb", declared_side: int | None = None
) -> bytes:
    """A ``side`` x ``side`` all-zero image at ``bits`` (16 or 32) bits, deflated. With
    ``declared_side`` the header lies: it declares that size while the pixels stay ``side``."""
    sop_uid = generate_uid(entropy_srcs=[seed, str(bits), str(side)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["hipstudy-tests"])
    head = io.BytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)

    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = False, True
    declared = declared_side or side
    write_dataset(body, _header(declared, declared, bits, sop_uid))  # explicit VR little endian (no file meta)
    pixel_bytes = side * side * bits // 8
    # (7FE0,0010) OW, two reserved bytes, 32-bit length: the element header of the pixels.
    body.write(b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_bytes.to_bytes(4, "little"))

    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [compressor.compress(body.getvalue())]
    zeros = bytes(_BLOCK)
    for start in range(0, pixel_bytes, _BLOCK):
        out.append(compressor.compress(zeros[: min(_BLOCK, pixel_bytes - start)]))
    out.append(compressor.flush())
    return head.getvalue() + b"".join(out)
