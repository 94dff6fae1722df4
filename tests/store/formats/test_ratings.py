"""store.formats.ratings: rating CSVs, out-of-range values, missing columns, Excel variants."""
from __future__ import annotations


from store.formats import RatingRecord, read_files
from formats_testing import FIX, ITEMS, error, write


def test_ratings_good():
    batch = read_files([FIX / "ratings_good.csv"], "ratings")
    assert batch.sessions == [] and len(batch.ratings) == 3
    r = batch.ratings[0]
    assert isinstance(r, RatingRecord)
    assert (r.session_id, r.rater) == ("text-session_en", "client")
    assert r.ratings == {1: 4, 2: 4, 3: 5, 4: 3, 5: 5, 6: 4, 7: 4, 8: 3, 9: 5, 10: 4, 11: 3, 12: 4}
    assert r.where == f"{FIX / 'ratings_good.csv'}:2"
    assert batch.ratings[1].rater == "counselor"


def test_ratings_out_of_range_names_line_column_and_allowed_values(tmp_path):
    path = write(tmp_path, "r.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,3,3,6,3,3,3,3,3\n")
    msg = error([path], "ratings")
    assert msg.startswith(f"{path}:2, column item_7 (column 9): score '6' is not allowed.")
    assert "Fix: Use a whole number from 1 to 5 (1 Seldom, 2 Sometimes, 3 Fairly often, 4 Very often, 5 Always)" in msg
    path = write(tmp_path, "r2.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,3,3,3.5,3,3,3,3,3\n")
    assert "column item_7 (column 9): score '3.5' is not allowed" in error([path], "ratings")
    path = write(tmp_path, "r3.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,,3,3,3,3,3,3,3\n")
    assert f"{path}:2, column item_5 (column 7): no score for item 5" in error([path], "ratings")


def test_ratings_missing_column_lists_expected(tmp_path):
    header = "session_id,rater," + ",".join(f"item_{i}" for i in range(1, 12))
    path = write(tmp_path, "r.csv", header + "\ns1,client," + ",".join(["3"] * 11) + "\n")
    msg = error([path], "ratings")
    assert msg.startswith(f"{path}:1: missing column item_12.")
    assert f"Fix: The first line must name the columns session_id, rater, {ITEMS.replace(',', ', ')}" in msg


def test_ratings_other_bad_inputs_and_duplicates(tmp_path):
    path = write(tmp_path, "a.csv", f"session_id,rater,{ITEMS}\ns1,observer," + ",".join(["3"] * 12) + "\n")
    msg = error([path], "ratings")
    assert f"{path}:2: column rater is 'observer'" in msg and "client" in msg and "counselor" in msg

    row = "s1,client," + ",".join(["3"] * 12)
    batch = read_files([write(tmp_path, "b.csv", f"session_id,rater,{ITEMS}\n{row}\n{row}\n")], "ratings")
    assert len(batch.ratings) == 1 and any("repeats" in w for w in batch.warnings)

    other = "s1,client," + ",".join(["4"] * 12)
    path = write(tmp_path, "c.csv", f"session_id,rater,{ITEMS}\n{row}\n{other}\n")
    msg = error([path], "ratings")
    assert (f"{path}:3: ratings 's1 by client' was already read at {path}:2 with different content "
            "(they differ in item_1, item_10") in msg

    assert "header but no rows" in error([write(tmp_path, "d.csv", f"session_id,rater,{ITEMS}\n")], "ratings")
    assert "the file is empty" in error([write(tmp_path, "e.csv", "")], "ratings")


def test_ratings_excel_variants(tmp_path):
    header = "Session_ID;Rater;" + ";".join(f"Item {i}" for i in range(1, 13)) + ";Notes"
    path = write(tmp_path, "x.csv", header + "\ns1;Client;" + ";".join(["2"] * 12) + ";late\n")
    batch = read_files([path], "ratings")
    assert batch.ratings[0].ratings == {i: 2 for i in range(1, 13)} and batch.ratings[0].rater == "client"
    assert any("ignored column 'Notes'" in w for w in batch.warnings)
