"""Fast JSON encoding of vitals messages, byte-equal to `monitor.core.schema`'s output.

`encode_sample` builds a pydantic model per message; this builds the same bytes with one
``%`` format. Python's ``repr`` of a float equals pydantic's output except for exponent forms
(``|x| < 1e-4`` or ``>= 1e16``), which take the schema's own encoder instead.
"""

from __future__ import annotations

import json

from monitor.core.schema import SCHEMA_VERSION, VitalsBlock, encode_sample


def _has_exponent(text: str) -> bool:
    # repr writes exponents as "4e-05" or "1e+16"; the schema writes "0.00004" and "1e+16".
    # A patient id containing "e-" only costs the slow path, never wrong bytes.
    return "e-" in text or "e+" in text


class MessageEncoder:
    """Encodes one patient's samples as single-sample or block messages.

    Args:
        patient_id: The patient's id (already allowlisted by `PATIENT_ID_PATTERN`).
        names: Vital names in the column order of the values.
    """

    def __init__(self, patient_id: str, names: tuple[str, ...]) -> None:
        self.patient_id = patient_id
        self.names = names
        vitals = ",".join(f"{json.dumps(n)}:%r" for n in names)
        self._sample = '"t":%r,"seq":%d,"vitals":{' + vitals + "}"
        self._single = f'{{"v":{SCHEMA_VERSION},"patient_id":{json.dumps(patient_id)},'
        self._single += self._sample + "}"
        self._block = f'{{"v":{SCHEMA_VERSION},"patient_id":{json.dumps(patient_id)},"samples":['

    def single(
        self, t: float, seq: int, values: list[float], sent: list[bool] | None = None
    ) -> bytes:
        """Encode one sample as a single-sample message (only the `sent` vitals, if given)."""
        if sent is not None and not all(sent):
            chosen = {n: v for n, v, s in zip(self.names, values, sent, strict=True) if s}
            return encode_sample(self.patient_id, t, seq, chosen)
        text = self._single % (t, seq, *values)
        if _has_exponent(text):
            return encode_sample(
                self.patient_id, t, seq, dict(zip(self.names, values, strict=True))
            )
        return text.encode()

    def block(
        self,
        t: list[float],
        seq: list[int],
        values: list[list[float]],
        sent: list[list[bool]] | None = None,
    ) -> bytes:
        """Encode consecutive samples as one block message (only the `sent` vitals, if given)."""
        if sent is not None and not all(map(all, sent)):
            partial = VitalsBlock.model_validate(
                {
                    "v": SCHEMA_VERSION,
                    "patient_id": self.patient_id,
                    "samples": [
                        {
                            "t": ti,
                            "seq": si,
                            "vitals": {
                                n: v for n, v, s in zip(self.names, vi, mi, strict=True) if s
                            },
                        }
                        for ti, si, vi, mi in zip(t, seq, values, sent, strict=True)
                    ],
                }
            )
            return partial.model_dump_json(by_alias=True).encode()
        fmt = self._sample
        body = ",".join(
            "{" + fmt % (ti, si, *vi) + "}" for ti, si, vi in zip(t, seq, values, strict=True)
        )
        text = self._block + body + "]}"
        if _has_exponent(text):
            block = VitalsBlock.model_validate(
                {
                    "v": SCHEMA_VERSION,
                    "patient_id": self.patient_id,
                    "samples": [
                        {"t": ti, "seq": si, "vitals": dict(zip(self.names, vi, strict=True))}
                        for ti, si, vi in zip(t, seq, values, strict=True)
                    ],
                }
            )
            return block.model_dump_json(by_alias=True).encode()
        return text.encode()
