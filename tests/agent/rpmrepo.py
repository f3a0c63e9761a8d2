"""A small RPM world inside a Debian root that has Debian's dnf, rpm and createrepo-c
(`debianroot.build_dnf_image`): three noarch packages built with rpmbuild (`pctl-ok`,
`pctl-lib`, and `pctl-bad` whose 1.1 `%pre` fails; scriptlets in Lua, so the install root needs
no shell), published with createrepo_c, an updateinfo.xml advisory `PCTL-2026:0001` for
pctl-lib added with modifyrepo_c, the 1.0 versions installed by `dnf --installroot` into
/srv/root, which says it is Rocky Linux 9.4."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

INSTALL_ROOT = "/srv/root"
OPTIONS = [
    f"--installroot={INSTALL_ROOT}",
    "--releasever=9",
    "--setopt=reposdir=/srv/repos.d",
    "--setopt=cachedir=/srv/cache",
    "--setopt=install_weak_deps=False",
    "--nogpgcheck",
]
RPM_OPTIONS = [f"--root={INSTALL_ROOT}"]
ADVISORY = "PCTL-2026:0001"

SPEC = textwrap.dedent("""
    Name: {name}
    Version: {version}
    Release: 1
    Summary: patchctl agent test package
    License: MIT
    BuildArch: noarch
    AutoReqProv: no
    %description
    patchctl agent test package
    {pre}
    %files
""")

UPDATEINFO = textwrap.dedent("""\
    <?xml version="1.0" encoding="UTF-8"?>
    <updates>
      <update from="tests@patchctl" status="final" type="security" version="1">
        <id>PCTL-2026:0001</id>
        <title>Important: pctl-lib security update</title>
        <severity>Important</severity>
        <issued date="2026-11-30 00:00:00"/>
        <description>test advisory</description>
        <references/>
        <pkglist><collection short="pctl">
          <package name="pctl-lib" version="1.1" release="1" epoch="0" arch="noarch">
            <filename>pctl-lib-1.1-1.noarch.rpm</filename>
          </package>
        </collection></pkglist>
      </update>
    </updates>
""")

OS_RELEASE = 'NAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'


def chroot(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["chroot", str(root), *args], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode:
        message = f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        raise RuntimeError(message)
    return done.stdout


def build(root: Path, name: str, version: str, pre: str = "") -> None:
    spec = root / "srv" / "specs" / f"{name}-{version}.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC.format(name=name, version=version, pre=pre))
    chroot(
        root,
        "rpmbuild",
        "-bb",
        "--quiet",
        "--define",
        "_topdir /srv/rpmbuild",
        f"/srv/specs/{spec.name}",
    )
    built = root / "srv" / "rpmbuild" / "RPMS" / "noarch" / f"{name}-{version}-1.noarch.rpm"
    (root / "srv" / "repo").mkdir(exist_ok=True)
    shutil.copy(built, root / "srv" / "repo")


def make_world(root: Path) -> Path:
    """Build the packages and the install root; the updateinfo.xml's path (on the host)."""
    (root / "srv" / "repos.d").mkdir(parents=True, exist_ok=True)
    (root / "srv" / "repos.d" / "local.repo").write_text(
        "[local]\nname=local\nbaseurl=file:///srv/repo\ngpgcheck=0\nmetadata_expire=0\n"
    )
    for name in ("pctl-ok", "pctl-lib", "pctl-bad"):
        build(root, name, "1.0")
    chroot(root, "createrepo_c", "-q", "/srv/repo")
    chroot(root, "dnf", *OPTIONS, "-y", "-q", "install", "pctl-ok", "pctl-lib", "pctl-bad")
    build(root, "pctl-ok", "1.1")
    build(root, "pctl-lib", "1.1")
    build(root, "pctl-bad", "1.1", pre='%pre -p <lua>\nerror("pctl-bad refuses to upgrade")')
    chroot(root, "createrepo_c", "-q", "--update", "/srv/repo")
    updateinfo = root / "srv" / "updateinfo.xml"
    updateinfo.write_text(UPDATEINFO)
    chroot(root, "modifyrepo_c", "--mdtype=updateinfo", "/srv/updateinfo.xml", "/srv/repo/repodata")
    # dnf kept the repository's metadata from the 1.0 install; it may judge it current even
    # with metadata_expire=0 (createrepo_c's revision is a time in seconds, and all of this
    # takes about one), and then lists no advisory: about one run in three did
    chroot(root, "dnf", *OPTIONS, "-q", "clean", "metadata")
    etc = root / INSTALL_ROOT.lstrip("/") / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "os-release").write_text(OS_RELEASE)
    (etc / "machine-id").write_text("9a8b7c6d5e4f30211203f4e5d6c7b8a9\n")
    return updateinfo
