"""Experiments: many training runs and the judgement of their differences.

- :mod:`.variants`: which models a comparison trains (default set, presets), by label.
- :mod:`.sweep`: run folders, workers that call :func:`attnzoo.train.train`, refusal of mismatched folders.
- :mod:`.stats`: paired and Welch intervals, Holm's correction.
- :mod:`.report`: leaderboard, verdicts, markdown and plots.
- :mod:`.compare`: ``attnzoo compare`` put together.
"""
