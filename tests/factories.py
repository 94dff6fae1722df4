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
        turns=[{"index": i, "speaker": "counselor" if i % 2 == 0 else "client", "text": txt} for i, txt in enumerate(texts)],
        ratings={"client": ratings} if ratings else {},
    )


def make_prediction(session_id: str, item: int, score: int = 3, version: str = "m1", pid: str = "") -> Prediction:
    return Prediction(id=pid or f"{session_id}|{version}|{item}", session_id=session_id, item=item, model_version=version,
                      score=score, expected_score=float(score), probs=[0.2] * 5, rationale=f"model says {score}")


def make_label(session_id: str, item: int, score: int = 4, annotator: str = SHARED, status: str = "draft",
               rationale: str = "expert rationale", rationale_source: str = "expert") -> Label:
    """An expert's label as the review page would save it (a rationale the expert wrote: ``expert``)."""
    return Label(session_id=session_id, item=item, annotator=annotator, score=score, rationale=rationale, status=status,
                 rationale_source=rationale_source)
