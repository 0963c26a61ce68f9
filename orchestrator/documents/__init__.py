"""Documents people read, sign and file: the Art. 16 notice letter and the Art. 18 record print.

Each is rendered from one HTML template (package data, autoescaped Jinja2) and, for paper, the
same HTML is laid out as PDF by WeasyPrint (with Debian's pango and a CJK font such as
``fonts-wqy-microhei``, so Chinese text renders). The operations take the acting person and
authorise themselves; the command line only parses and prints.
"""
