"""``license:`` — the model's license as an SPDX id or expression (checked, never invented).

Accepted: an id from ``SPDX_IDS`` in any letter case (written back in SPDX's spelling),
``LicenseRef-<name>`` for a license of your own, and expressions of those joined by ``AND`` /
``OR``, each optionally ``WITH`` an exception (``Apache-2.0 WITH LLVM-exception``). Anything
else is an error with the nearest id, since a mistyped license would reach the model card.
"""

from __future__ import annotations

import difflib
import re

# SPDX ids that models and data sets commonly carry: every SPDX id behind a Hugging Face Hub
# license identifier, the usual software licenses, and deprecated ids people still write.
SPDX_IDS = (
    "0BSD",
    "AFL-3.0",
    "AGPL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-2.0",
    "BlueOak-1.0.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-3-Clause-Clear",
    "BSL-1.0",
    "C-UDA-1.0",
    "CC-BY-2.0",
    "CC-BY-2.5",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-NC-2.0",
    "CC-BY-NC-3.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-ND-3.0",
    "CC-BY-NC-ND-4.0",
    "CC-BY-NC-SA-2.0",
    "CC-BY-NC-SA-3.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDLA-Permissive-1.0",
    "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0",
    "ECL-2.0",
    "EPL-1.0",
    "EPL-2.0",
    "etalab-2.0",
    "EUPL-1.1",
    "EUPL-1.2",
    "GPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.1",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "LPPL-1.3c",
    "MIT",
    "MIT-0",
    "MPL-2.0",
    "MS-PL",
    "NCSA",
    "ODbL-1.0",
    "ODC-By-1.0",
    "OFL-1.1",
    "OSL-3.0",
    "PDDL-1.0",
    "PostgreSQL",
    "Unlicense",
    "UPL-1.0",
    "WTFPL",
    "Zlib",
)
_BY_LOWER = {i.lower(): i for i in SPDX_IDS}
_REF = re.compile(r"^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")
_EXCEPTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
HELP = (
    "an SPDX id such as MIT or Apache-2.0, an expression such as 'MIT OR Apache-2.0', "
    "or LicenseRef-<name> for a license of your own"
)


def normalize_license(value: str) -> str:
    """``value`` with each id in SPDX's spelling; ``ValueError`` naming the bad part."""
    words = value.split()
    if not words:
        raise ValueError(f"must be {HELP}, got {value!r}")
    out: list[str] = []
    for i, word in enumerate(words):
        expect_id = i % 2 == 0
        if not expect_id:
            if word.upper() not in ("AND", "OR", "WITH"):
                raise ValueError(f"expected AND, OR or WITH after {words[i - 1]!r}, got {word!r}")
            out.append(word.upper())
        elif out and out[-1] == "WITH":
            if not _EXCEPTION.match(word):
                raise ValueError(f"not an SPDX exception id after WITH, got {word!r}")
            out.append(word)
        else:
            out.append(_license_id(word))
    if len(words) % 2 == 0:
        raise ValueError(f"ends with {words[-1]!r} and no license id after it, got {value!r}")
    return " ".join(out)


def _license_id(word: str) -> str:
    if _REF.match(word):
        return word
    known = _BY_LOWER.get(word.lower())
    if known is not None:
        return known
    close = difflib.get_close_matches(word.lower(), list(_BY_LOWER), n=1, cutoff=0.6)
    hint = f"; did you mean '{_BY_LOWER[close[0]]}'?" if close else ""
    raise ValueError(f"unknown SPDX license id, got {word!r}{hint} (use {HELP})")
