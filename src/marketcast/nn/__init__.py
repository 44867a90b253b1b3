"""The network and how it learns: the stacked LSTM (:mod:`~.network`), the fast training
loop (:mod:`~.train`), its plain reference (:mod:`~.reference`) and checkpoints
(:mod:`~.checkpoint`). Sees arrays and tensors only, never dates or files of a run."""
