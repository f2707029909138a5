"""The installed distribution's metadata: what a package index shows of crnn."""

import re
from importlib import metadata

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


def test_license_file_is_installed():
    dist = metadata.distribution("crnn")
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    licenses = [f for f in dist.files or () if f.name == "LICENSE"]
    assert licenses, "no LICENSE in the installed distribution"
    text = licenses[0].read_text(encoding="utf-8")
    assert text.startswith("BSD 3-Clause License")
    assert "the crnn developers" in text


def test_supported_pythons_agree():
    meta = metadata.metadata("crnn")
    assert meta["Requires-Python"] == f">={SUPPORTED[0]}"
    prefix = "Programming Language :: Python :: "
    versions = [c.removeprefix(prefix) for c in meta.get_all("Classifier") if c.startswith(prefix)]
    assert sorted(v for v in versions if v.startswith("3.")) == SUPPORTED


def test_project_urls_and_contact():
    meta = metadata.metadata("crnn")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or ())
    assert {"Documentation", "Source", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values()), urls
    assert re.fullmatch(
        r".*<[^@\s]+@[^@\s]+\.[a-z]+>|[^@\s]+@[^@\s]+\.[a-z]+", meta["Author-email"]
    )


def test_readme_images_render_on_a_package_index():
    # the index shows the README from the metadata, without the repository:
    # a relative image path would be a broken image there
    meta = metadata.metadata("crnn")
    assert meta["Description-Content-Type"] == "text/markdown"
    # the README is the metadata's body; importlib_metadata (the backport,
    # which distributed puts in place of the standard library's) moves it
    # into a Description header
    readme = meta.get("Description") or meta.get_payload()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", readme) + re.findall(
        r"<img[^>]*src=\"([^\"]+)", readme
    )
    assert images, "no image found in the README"
    assert all(i.startswith("https://") for i in images), images
