"""Patch-feed importers: vendor documents in, catalogue `PatchRecord`s out.

One module per format (native, osv, msrc, csaf, updateinfo, debpackages); `read_feed` picks the
module for a `FeedFormat` and reads a file or a directory. Importers read files and parse them
safely (defusedxml for XML); they never write, and they report malformed input as `FeedError`
values instead of raising. See docs/feeds.md for the field mapping of every format.
"""

from controller.feeds.common import FeedError, FeedResult
from controller.feeds.reader import read_feed

__all__ = ["FeedError", "FeedResult", "read_feed"]
