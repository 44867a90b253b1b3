"""Run folders: what each kind of folder holds, how it is written and how it is read back.

Below the report and the API, above the pipeline: a run folder is written by one staged
write (:class:`~marketcast.runs.folder.RunFolder`) and verified through its manifest on
every read.
"""
