"""Date-aware orchestration of models on series: load, split, fit, the test table, the
future forecast (:mod:`~.series`), many tickers (:mod:`~.panel`, :mod:`~.global_model`) and
walk-forward evaluation (:mod:`~.walkforward`)."""
