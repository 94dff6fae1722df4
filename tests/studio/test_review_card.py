"""The review page's one item card (issue 20): showing another item saves the shown item's unsaved
rationale and evidence first (with the conflict check), and a card event names its own item."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from care_model.core.records import SHARED
from studio import review
from studio.access import Access

SID = "sample-en-05"


def _page(tmp_path):
    from studio import review_tab
    from studio.app import AppContext
    from studio_testing import make_store

    repo = make_store(tmp_path / "store", curation_mode="expert_judged", show_ratings=True)
    repo.assign([SID], ["ann", "bob"], actor="admin")
    with gr.Blocks():
        h = review_tab.build_tab(AppContext(repo=repo))
    return repo, h, SimpleNamespace(username="ann")


def test_showing_another_item_saves_the_shown_one_first_and_a_conflict_keeps_it_shown(tmp_path):
    repo, h, ann = _page(tmp_path)
    k = h.card
    up = h.open(SID, None, ann)
    rs = up[h.c.st]
    assert up[k.item] == "1" and 'data-item="1"' in up[k.head] and rs.current == 1  # the first unreviewed item
    saved = rs.items[1]["saved"]
    up = h.show_item(rs, "4:7", "1", saved["score"], "Typed, not yet saved.", "2, 3", [], ann)
    lab = repo.get_label(SID, 1, SHARED)
    assert (lab.rationale, lab.evidence) == ("Typed, not yet saved.", [2, 3])  # saved on leaving, as blur does
    assert up[k.item] == "4" and 'data-item="4" data-req="7"' in up[k.head] and rs.current == 4
    assert up[k.rationale] == rs.items[4]["saved"]["rationale"] and "Saved item 1" in up[h.c.status]
    again = h.show_item(rs, "5:9", "4", None, up[k.rationale], up[k.evidence], [], ann)  # nothing to save
    assert again[k.item] == "5" and h.c.items_list not in again  # the list is left as it is
    late = h.card_save("score")(rs, "1", 2, ann)  # an edit sent for item 1 just before the switch
    assert repo.get_label(SID, 1, SHARED).score == 2 and k.head not in late and k.feedback not in late

    bob = Access("bob", "annotator")  # someone else saves item 4 meanwhile
    it = next(i for i in review.open_view(repo, bob, SID)["items"] if i["item"] == 4)
    review.save_item(repo, bob, SID, 4, {**it["draft"], "rationale": "Bob's."}, expected_version=it["version"])
    up = h.show_item(rs, "5:8", "4", rs.items[4]["saved"]["score"], "Ann's.", "", [], ann)
    assert repo.get_label(SID, 4, SHARED).rationale == "Bob's."  # nothing overwritten
    assert up[k.item] == "4" and rs.current == 4 and up[h.c.keep_mine]["visible"] is True  # the card stays
    assert "was changed by bob" in up[h.c.status]
    up = h.keep_mine(rs, "4", rs.items[4]["saved"]["score"], "Ann's, merged.", "", [], ann)
    assert repo.get_label(SID, 4, SHARED).rationale == "Ann's, merged." and up[k.item] == "4"
    assert up[h.c.keep_mine]["visible"] is False
    repo.close()
