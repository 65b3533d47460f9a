"""Evaluation on labelled data: LFW verification protocol and shared metrics."""
