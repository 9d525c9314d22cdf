"""``license:`` in the spec: SPDX ids and expressions, spelled as SPDX spells them."""

from __future__ import annotations

import pytest

from canonml.errors import SpecError
from canonml.spec import load_spec, spec_to_yaml
from tests.conftest import tiny_spec

GOOD = [
    ("MIT", "MIT"),
    ("apache-2.0", "Apache-2.0"),
    ("gpl-3.0-or-later", "GPL-3.0-or-later"),
    ("mit or Apache-2.0", "MIT OR Apache-2.0"),
    ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
    ("LicenseRef-acme-internal", "LicenseRef-acme-internal"),
    (None, None),
]
BAD = [
    ("apache-2", "license: unknown SPDX license id, got 'apache-2'; did you mean 'Apache-2.0'?"),
    ("gpl3", "did you mean 'GPL-3.0'?"),
    ("Proprietary", "license: unknown SPDX license id, got 'Proprietary' (use an SPDX id"),
    ("MIT XOR BSD-3-Clause", "license: expected AND, OR or WITH after 'MIT', got 'XOR'"),
    ("MIT OR", "license: ends with 'OR' and no license id after it"),
    ("MIT WITH (x)", "license: not an SPDX exception id after WITH, got '(x)'"),
    ("", "license: must be an SPDX id such as MIT"),
    (3, "license: Input should be a valid string"),
]


@pytest.mark.parametrize(("value", "resolved"), GOOD)
def test_spdx_licenses_are_accepted_and_normalised(value: str | None, resolved: str) -> None:
    spec = load_spec(tiny_spec(license=value))
    assert spec.license == resolved
    assert f"license: {resolved or 'null'}" in spec_to_yaml(spec)  # written back resolved


@pytest.mark.parametrize(("value", "message"), BAD)
def test_a_bad_license_names_the_key(value: object, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec(license=value))
    assert message in str(info.value) and "\n" not in str(info.value)
