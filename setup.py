"""Only what setup.cfg cannot say: the optional C part (helm_monitor/sources/claude/_lines.c).

Where it cannot be built (no compiler), the install goes on without it and the transcript
reader does the same work in Python.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("helm_monitor.sources.claude._lines", ["helm_monitor/sources/claude/_lines.c"],
                             optional=True)])
