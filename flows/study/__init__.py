"""`radflow study [NAME]`: named comparisons of training recipes (params.yaml `study:`), run as ordinary DVC
experiments through DVC's queue and compared paired, on the same test patients, with honest intervals.

A study is analysis: it never touches the registry or promotion.
"""
