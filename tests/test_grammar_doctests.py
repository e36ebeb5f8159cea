"""The Examples sections of the grammar modules run and print what they claim."""

import doctest

import pytest

from hiergrammar import families, grammar, grammar_io, rhm


@pytest.mark.parametrize("module", [grammar, grammar_io, families, rhm], ids=lambda m: m.__name__)
def test_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
