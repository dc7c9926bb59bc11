"""The CSV reader names the two most common ways a spreadsheet export goes wrong."""

from __future__ import annotations

import pytest

from l2o.io import DataError, read_arrays


@pytest.mark.parametrize("sep,name", [(";", "semicolon"), ("\t", "tab")])
def test_a_semicolon_or_tab_separated_file_is_named(tmp_path, sep, name):
    path = tmp_path / "d.csv"
    path.write_text("\n".join(sep.join(row) for row in [["0.5", "1.5", "1"], ["2.0", "0.1", "0"]]) + "\n")
    with pytest.raises(DataError, match=f"looks {name}-separated"):
        read_arrays(path, "logistic")


@pytest.mark.parametrize("first", ["", "Unnamed: 0", "index"])
def test_an_index_column_is_named(tmp_path, first):
    path = tmp_path / "d.csv"
    path.write_text(f"{first},a,b,label\n0,0.5,1.5,1\n1,2.0,0.1,0\n")
    with pytest.raises(DataError, match="index column"):
        read_arrays(path, "logistic")


def test_a_plain_file_with_a_header_still_reads(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n0.5,1.5,1\n2.0,0.1,0\n")
    arrays = read_arrays(path, "logistic")
    assert arrays["X"].tolist() == [[0.5, 1.5], [2.0, 0.1]] and arrays["y"].tolist() == [1.0, 0.0]
