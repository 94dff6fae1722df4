"""Insights: the CARE paper's section 7 over a store's sessions (statistics over plain records).

* :mod:`~care_model.insights.table` -- one row per session: its alliance (a model version's
  predicted dimension means, the client's self-report or the counselor's self-rating), client,
  counselor, order and fields;
* :mod:`~care_model.insights.codes` -- code mappings (``data/codes/*.json``) and the adjacent
  counselor -> client code pairs of a session, normalised per session;
* :mod:`~care_model.insights.patterns` -- the pattern regression (statsmodels OLS, standard errors
  clustered by client), Table 8;
* :mod:`~care_model.insights.profiles` -- counselor profiles with cluster-bootstrap intervals, Fig. 2;
* :mod:`~care_model.insights.trajectories` -- client trajectories with ruptures, and the
  low-alliance drill-down;
* :mod:`~care_model.insights.groups` -- known-groups validity (difference and AUC per dimension);
* :mod:`~care_model.insights.plots` and :mod:`~care_model.insights.page` -- PNGs and the HTML.

Pure: numpy, scipy, statsmodels, scikit-learn and matplotlib; never torch, never the store
(:mod:`care_model.jobs.insights` opens the store). May import :mod:`care_model.core`,
:mod:`care_model.stats` and :mod:`care_model.report.plots` (the report's plotting style).
"""
