"""DARTS genotype notation: printed as DARTS prints it, parsed back without eval, defects named."""

import pytest
from genotypes import DARTS_V1, DARTS_V2

from bayesnas.spaces.darts.genotype import parse_genotype


def test_darts_v2_prints_back_exactly():
    genotype = parse_genotype(DARTS_V2)
    assert str(genotype) == DARTS_V2
    assert genotype.normal[7] == ("dil_conv_3x3", 2)
    assert genotype.reduce_concat == (2, 3, 4, 5)


def test_ranges_newlines_and_a_trailing_comma_are_read():
    genotype = parse_genotype(DARTS_V1)
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert parse_genotype(str(genotype)) == genotype
    assert parse_genotype(DARTS_V2.replace("'", '"')) == parse_genotype(DARTS_V2)


MALFORMED = [
    (DARTS_V2.replace("dil_conv_3x3", "conv_7x7"), "unknown op 'conv_7x7' in normal"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 6)"), "node 5 reads input 6"),
    (
        DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0)"),
        "node 5 has 1 input",
    ),
    (DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ", "", 1), "it has 3 nodes"),
    (
        DARTS_V2.replace(
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1)",
            1,
        ),
        "node 3 reads input 1 twice",
    ),
    (DARTS_V2.replace("('max_pool_3x3', 0)", "('none', 0)", 1), "op 'none' in reduce"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 5]"), "normal_concat"),
    (DARTS_V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), "lacks reduce_concat"),
    (DARTS_V2[:-1], "found the end"),
    (DARTS_V2 + "; import os", "unexpected character"),
    ("__import__('os').system('true')", "starts with 'Genotype('"),
    ("Genotype(normal=[('sep_conv_3x3', 0)] * 8)", "unexpected character"),
    ("|nor_conv_3x3~0|+|", "starts with 'Genotype('"),
    (DARTS_V2.replace("normal=", "normal=normal, x="), "expected a list"),
]


@pytest.mark.parametrize(("text", "needle"), MALFORMED, ids=[n for _, n in MALFORMED])
def test_malformed_genotypes_name_their_fault(text, needle):
    with pytest.raises(ValueError) as info:
        parse_genotype(text)
    assert needle in str(info.value), str(info.value)
