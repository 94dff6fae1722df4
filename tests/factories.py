"""Small builders for test records (real records, written to real stores)."""
from __future__ import annotations

from care_model.core.records import Label, Prediction, Session, SHARED


def make_session(sid: str = "s1", n_turns: int = 6, language: str = "en", client: str = "c-1",
                 ratings: dict | None = None, texts: list[str] | None = None) -> Session:
    if texts is None:
        texts = [(f"How have things been this week? ({sid})" if t % 2 == 0 else f"Honestly a bit better, turn {t}.")
                 if language == "en" else (f"这周过得怎么样？（{sid}）" if t % 2 == 0 else f"说实话好一些了，第{t}轮。")
                 for t in range(n_turns)]
    return Session(
        id=sid, language=language, source="test", client_id=client, counselor_id="t-1",
        turns=[{"index": i, "speaker": "counselor" if i % 2 == 0 else "client", "text": txt}
               for i, txt in enumerate(texts)],
        ratings={"client": ratings} if ratings else {},
    )


def make_prediction(session_id: str, item: int, score: int = 3, version: str = "m1", pid: str = "") -> Prediction:
    return Prediction(id=pid or f"{session_id}|{version}|{item}", session_id=session_id, item=item,
                      model_version=version,
                      score=score, expected_score=float(score), probs=[0.2] * 5, rationale=f"model says {score}")


def make_label(session_id: str, item: int, score: int = 4, annotator: str = SHARED, status: str = "draft",
               rationale: str = "expert rationale", rationale_source: str = "expert") -> Label:
    """An expert's label as the review page would save it (a rationale the expert wrote: ``expert``)."""
    return Label(session_id=session_id, item=item, annotator=annotator, score=score, rationale=rationale, status=status,
                 rationale_source=rationale_source)


def hand_checked_evaluation():
    """The hand-checked fixture of tests/stats/test_evaluate.py (and the evaluate job's tests):
    four sessions (clients c1, c1, c2, c3) with client self-reports; predictions = truth + an
    offset per session; labels = truth for sessions s0-s2."""
    from care_model.core.wai import load_form

    form = load_form()
    truths = {
        "s0": {i: 2 for i in form.item_ids},
        "s1": {i: 3 for i in form.item_ids},
        "s2": {i: (4 if i in form.dimension("bond").item_ids else 3) for i in form.item_ids},
        "s3": {i: 5 for i in form.item_ids},
    }
    offsets = {"s0": 1, "s1": 0, "s2": 0, "s3": -1}
    sessions, preds, labels = [], [], []
    for n, (sid, truth) in enumerate(truths.items()):
        sess = make_session(sid, client=["c1", "c1", "c2", "c3"][n], ratings=truth,
                            language="zh" if sid == "s2" else "en")
        if sid == "s1":
            sess.ratings["counselor"] = {i: 4 for i in form.item_ids}
        sessions.append(sess)
        for i in form.item_ids:
            p = make_prediction(sid, i, truth[i] + offsets[sid])
            p.rationale = f"the client in session {sid} answered item {i} this way"
            preds.append(p)
            if sid != "s3":
                labels.append(make_label(sid, i, truth[i], status="submitted",
                                         rationale=f"the client in session {sid} answered item {i} this way"))
    return sessions, preds, labels
