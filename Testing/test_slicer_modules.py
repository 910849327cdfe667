"""Checks of the Slicer modules that need no Slicer.

* every module script compiles as Python 3.9 (Slicer 5.8's Python);
* every ``from DefaceRTLib... import name`` in module code names something
  that exists in the installed library;
* every ``self.ui.<name>`` / ``ui.<name>`` the code uses is a widget of the
  module's .ui file, with a class the code can use;
* every SlicerParameterName in a .ui is a field of the module's
  parameterNodeWrapper class, with a widget class parameterNodeWrapper can
  connect to that field's type;
* the CMake files list every module script and resource, and the library's
  CMakeLists lists every .py of the package;
* the RAS/LPS conversion and the mask -> contour conversion are right;
* the batch scripts run with plain python on a synthetic cohort.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("DefaceRT", "FaceRecognitionQA", "SegmentationCompare")
ADAPTER = ROOT / "DefaceRT" / "DefaceRTSlicerLib"
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python3")

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "DefaceRT"))
import update_cmake_lists  # noqa: E402


def module_scripts():
    out = [ROOT / m / f"{m}.py" for m in MODULES]
    out += sorted(ADAPTER.glob("*.py"))
    return out


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


# ------------------------------------------------------------------ Python 3.9
@pytest.mark.parametrize("path", module_scripts(), ids=_ids(module_scripts()))
def test_compiles_as_python39(path):
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path), feature_version=(3, 9))
    if PY39.exists():
        result = subprocess.run([str(PY39), "-m", "py_compile", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_python39_compiler_catches_newer_syntax(tmp_path):
    """The check above can fail: a ``match`` statement is refused."""
    bad = "match x:\n    case 1:\n        pass\n"
    with pytest.raises(SyntaxError):
        ast.parse(bad, feature_version=(3, 9))


# ------------------------------------------------------------ library imports
def library_imports(path):
    """(module, name, line) for every ``from DefaceRTLib...`` import, and
    (module, None, line) for ``import DefaceRTLib...``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "DefaceRTLib" and node.level == 0:
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and path.parent == ADAPTER:
            continue
        elif isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "DefaceRTLib"]
    return out


def missing_library_names(path):
    problems = []
    for module, name, line in library_imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"{path.name}:{line}: cannot import {module} ({exc})")
            continue
        if name is None or hasattr(mod, name):
            continue
        is_package = hasattr(mod, "__path__")
        if not is_package or importlib.util.find_spec(f"{module}.{name}") is None:
            problems.append(f"{path.name}:{line}: {module} has no {name}")
    return problems


@pytest.mark.parametrize("path", module_scripts(), ids=_ids(module_scripts()))
def test_imports_only_existing_library_names(path):
    # every module file uses the library, except the adapter's Slicer-only helpers
    assert library_imports(path) or path.name in ("__init__.py", "dependencies.py", "widget.py", "guiconnection.py", "jobrunner.py")
    assert missing_library_names(path) == []


def test_import_check_can_fail(tmp_path):
    bad = tmp_path / "Bad.py"
    bad.write_text("def f():\n    from DefaceRTLib.geometry import NoSuchThing\n    from DefaceRTLib.nosuchmodule import x\n")
    problems = missing_library_names(bad)
    assert len(problems) == 2


def test_adapter_imports_exist_in_adapter():
    """``from DefaceRTSlicerLib import x`` in the modules names real adapter modules."""
    for path in module_scripts()[:3]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "DefaceRTSlicerLib":
                for alias in node.names:
                    assert (ADAPTER / f"{alias.name}.py").exists(), f"{path.name}: no DefaceRTSlicerLib.{alias.name}"


# ----------------------------------------------------------------- .ui files
def ui_widgets(path):
    """{widget name: class} and {widget name: SlicerParameterName} of a .ui file."""
    root = ET.parse(path).getroot()
    classes, params = {}, {}
    for w in root.iter("widget"):
        classes[w.get("name")] = w.get("class")
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                params[w.get("name")] = prop.find("string").text
    return classes, params


def ui_uses(path):
    """Names used as ``self.ui.<name>`` and the first method called on them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui":
            used.setdefault(node.attr, set())
    for node in ast.walk(tree):
        # self.ui.<name>.<member>
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Attribute)
            and node.value.value.attr == "ui"
        ):
            used[node.value.attr].add(node.attr)
    return used


#: Members the module code may use per widget class (Qt/CTK/MRML API).
WIDGET_MEMBERS = {
    "QPushButton": {"connect", "enabled", "toolTip", "text", "checked"},
    "QCheckBox": {"connect", "enabled", "checked"},
    "QLabel": {"text", "setPixmap", "setText"},
    "QListWidget": {"connect", "clear", "addItem", "item", "count"},
    "QPlainTextEdit": {"setPlainText", "plainText"},
    "QProgressBar": {"maximum", "value", "format", "minimum"},
    "qMRMLTableView": {"setMRMLTableNode", "connect", "sortingEnabled"},
    "qMRMLNodeComboBox": {"connect", "currentNode", "setCurrentNode"},
    "ctkPathLineEdit": {"currentPath"},
    "QDoubleSpinBox": {"value"},
    "QLineEdit": {"text"},
}


@pytest.mark.parametrize("module", MODULES)
def test_ui_names_exist_with_expected_class(module):
    classes, _ = ui_widgets(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    used = ui_uses(ROOT / module / f"{module}.py")
    assert used, "the module uses no ui widgets?"
    for name, members in used.items():
        assert name in classes, f"{module}.py uses ui.{name}, which is not in {module}.ui"
        allowed = WIDGET_MEMBERS.get(classes[name])
        assert allowed is not None, f"ui.{name} is a {classes[name]}, which the module code should not drive"
        assert members <= allowed, f"ui.{name} ({classes[name]}) used with {sorted(members - allowed)}"


def parameter_fields(path):
    """{field: annotation source} of the @parameterNodeWrapper class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list
        ):
            return {
                s.target.id: ast.unparse(s.annotation)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    raise AssertionError(f"no @parameterNodeWrapper class in {path}")


def connectable(widget_class, annotation):
    """Whether Slicer's parameterNodeWrapper GUI connectors (5.4-5.12) bind
    this widget class to this annotation."""
    base = re.sub(r"^Annotated\[(.*?),.*\]$", r"\1", annotation).strip()
    if widget_class in ("QCheckBox", "QPushButton"):
        return base == "bool"
    if widget_class in ("QSpinBox", "QSlider"):
        return base == "int"
    if widget_class in ("QDoubleSpinBox",):
        return base == "float"
    if widget_class == "ctkSliderWidget":
        return base == "float" and "WithinRange" in annotation
    if widget_class in ("QLineEdit", "QTextEdit"):
        return base == "str"
    if widget_class in ("ctkPathLineEdit", "ctkDirectoryButton"):
        return base in ("pathlib.Path", "Path")
    if widget_class == "qMRMLNodeComboBox":
        return base.startswith("vtkMRML")
    return False


@pytest.mark.parametrize("module", MODULES)
def test_slicer_parameter_names_match_fields(module):
    classes, params = ui_widgets(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    fields = parameter_fields(ROOT / module / f"{module}.py")
    assert params, "no SlicerParameterName in the .ui"
    for widget, param in params.items():
        assert param in fields, f"{module}.ui: {widget} has SlicerParameterName {param!r}, not a parameter-node field"
        assert connectable(classes[widget], fields[param]), (
            f"{module}.ui: {widget} ({classes[widget]}) cannot connect to {param}: {fields[param]}"
        )
    assert len(set(params.values())) == len(params), "two widgets bound to one parameter"


def test_connectable_rejects_mismatches():
    assert not connectable("QCheckBox", "float")
    assert not connectable("ctkSliderWidget", "float")
    assert connectable("ctkSliderWidget", "Annotated[float, WithinRange(0, 1)]")
    assert not connectable("qMRMLNodeComboBox", "str")


@pytest.mark.parametrize("module", MODULES)
def test_ui_node_combos_get_the_scene(module):
    """Every node selector is connected to mrmlSceneChanged, as in Slicer's template."""
    path = ROOT / module / "Resources" / "UI" / f"{module}.ui"
    classes, _ = ui_widgets(path)
    root = ET.parse(path).getroot()
    receivers = {c.findtext("receiver") for c in root.iter("connection") if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    for name, cls in classes.items():
        if cls in ("qMRMLNodeComboBox", "qMRMLTableView"):
            assert name in receivers, f"{module}.ui: {name} never gets the MRML scene"


# --------------------------------------------------------------------- CMake
def cmake_list(path, variable):
    text = path.read_text(encoding="utf-8")
    m = re.search(r"set\(\s*" + variable + r"\s+(.*?)\)", text, re.S)
    assert m, f"{path}: no set({variable} ...)"
    return [v for v in m.group(1).split() if not v.startswith("#")]


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_every_script_and_resource(module):
    folder = ROOT / module
    cmake = folder / "CMakeLists.txt"
    scripts = {s.replace("${MODULE_NAME}", module) for s in cmake_list(cmake, "MODULE_PYTHON_SCRIPTS")}
    resources = {r.replace("${MODULE_NAME}", module) for r in cmake_list(cmake, "MODULE_PYTHON_RESOURCES")}
    assert scripts == {p.name for p in folder.glob("*.py")}
    on_disk = {p.relative_to(folder).as_posix() for p in (folder / "Resources").rglob("*") if p.is_file() and p.suffix != ".py"}
    assert resources == on_disk
    for entry in scripts | resources:
        assert (folder / entry).exists(), f"{cmake} lists missing {entry}"
    text = cmake.read_text()
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert f"set(MODULE_NAME {module})" in text


@pytest.mark.parametrize("package", sorted(update_cmake_lists.PACKAGES))
def test_package_cmake_lists_every_file(package):
    folder = update_cmake_lists.PACKAGES[package]
    cmake = folder / "CMakeLists.txt"
    listed = cmake_list(cmake, "MODULE_PYTHON_SCRIPTS")
    expected = update_cmake_lists.package_scripts(folder)
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    assert not missing and not extra, (
        f"{cmake.relative_to(ROOT)} is out of date (missing {missing}, no longer present {extra}); "
        "run python scripts/update_cmake_lists.py"
    )
    assert sorted(cmake_list(cmake, "MODULE_PYTHON_RESOURCES")) == sorted(update_cmake_lists.package_resources(folder))
    assert "WITH_SUBDIR" in cmake.read_text()
    assert folder.name == package  # WITH_SUBDIR installs into a folder named like the source folder


def test_package_listing_detects_new_file(tmp_path):
    pkg = tmp_path / "Pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("")
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "a.cpython-312.pyc").write_bytes(b"")
    assert update_cmake_lists.package_scripts(pkg) == ["__init__.py", "sub/a.py"]
    (pkg / "sub" / "b.py").write_text("")
    assert "sub/b.py" in update_cmake_lists.package_scripts(pkg)


def test_top_level_cmake():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needle in ("project(", "EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                   "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                   'set(EXTENSION_DEPENDS "SlicerRT")', "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                   "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert needle in text, needle
    subdirs = re.findall(r"^add_subdirectory\((\w+)\)", text, re.M)
    assert subdirs == ["DefaceRTLib", *MODULES]
    assert (ROOT / "Resources" / "DefaceRT.png").exists()
    assert "add_subdirectory(DefaceRTSlicerLib)" in (ROOT / "DefaceRT" / "CMakeLists.txt").read_text()


# ----------------------------------------------------------- conversions
def test_ras_lps_round_trip_and_geometry():
    from DefaceRTSlicerLib import convert

    from DefaceRTLib.geometry import ImageGeometry

    g = ImageGeometry((5, 6, 7), (0.9, 0.8, 2.5), (-100.0, 50.0, 20.0), ((1, 0, 0), (0, 1, 0), (0, 0, -1)))
    ijk_to_ras = convert.ijk_to_ras_from_geometry(g)
    # voxel (1, 2, 3): LPS from the library, RAS from the matrix, must differ by the flip only
    lps = g.index_to_lps(np.array([1.0, 2.0, 3.0]))
    ras = (ijk_to_ras @ np.array([1.0, 2.0, 3.0, 1.0]))[:3]
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]])
    back = convert.geometry_from_ijk_to_ras(ijk_to_ras, g.size)
    assert back.same_grid(g)
    np.testing.assert_allclose(convert.ras_to_lps(convert.lps_to_ras(lps)), lps)
    # a Slicer HFS CT: IJK-to-RAS has -1 on the first two diagonal entries -> identity direction in LPS
    slicer_matrix = np.diag([-0.9, -0.9, 2.5, 1.0])
    slicer_matrix[:3, 3] = (100.0, 120.0, -50.0)
    geo = convert.geometry_from_ijk_to_ras(slicer_matrix, (4, 4, 4))
    np.testing.assert_allclose(geo.direction_matrix, np.eye(3))
    np.testing.assert_allclose(geo.origin, (-100.0, -120.0, -50.0))


def test_contours_from_mask_rasterise_back():
    pytest.importorskip("skimage")
    from DefaceRTSlicerLib import convert

    from DefaceRTLib.geometry import ImageGeometry
    from DefaceRTLib.rtstruct import rasterize_contours

    g = ImageGeometry((40, 30, 5), (1.0, 1.2, 3.0), (10.0, -20.0, 5.0), ((-1, 0, 0), (0, 1, 0), (0, 0, 1)))
    k, j, i = np.meshgrid(np.arange(5), np.arange(30), np.arange(40), indexing="ij")
    mask = ((i - 18) ** 2 / 100 + (j - 14) ** 2 / 64 <= 1) & (k >= 1) & (k <= 3)
    mask[2, 12:16, 16:20] = False  # a hole
    mask[2, 0:3, 0:3] = True  # touching the edge
    contours = convert.contours_from_mask(mask, g)
    assert contours
    back = rasterize_contours(contours, g)
    np.testing.assert_array_equal(back, mask)


def test_roi_collection_behaves_like_a_structure_set():
    from DefaceRTSlicerLib import convert

    from DefaceRTLib.geometry import ImageGeometry
    from DefaceRTLib.rtstruct import ROI, Contour

    g = ImageGeometry((20, 20, 3), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    square = np.array([[4.5, 4.5, 2.0], [9.5, 4.5, 2.0], [9.5, 9.5, 2.0], [4.5, 9.5, 2.0]])
    rois = convert.RoiCollection([ROI(1, "PTV", contours=[Contour(square)])])
    assert rois.names() == ["PTV"]
    assert rois.rasterize("PTV", g).sum() == 25
    with pytest.raises(KeyError):
        rois.roi("Brain")


def test_dependency_groups_and_constraints():
    from DefaceRTSlicerLib import dependencies

    text = dependencies.constraints_text()
    assert re.search(r"^numpy==\d", text, re.M)
    assert "SimpleITK==" in text and "pydicom==" in text
    for group in dependencies.GROUPS.values():
        for requirement in group.values():
            name = re.split(r"[<>=!]", requirement)[0].lower()
            assert name not in {p.lower() for p in dependencies.PROTECTED}, f"{requirement} would replace a Slicer package"
    assert dependencies.missing("deface") == []  # installed in the test environments
    with pytest.raises(ValueError):
        dependencies.missing("nonsense")


# --------------------------------------------------------------- batch scripts
BATCH = sorted(p for p in (ROOT / "batch").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", BATCH, ids=[p.name for p in BATCH])
def test_batch_script_compiles_and_has_help(script):
    ast.parse(script.read_text(encoding="utf-8"), feature_version=(3, 9))
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "slicer" not in {n.split(".")[0] for n in _imports(script)}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.fixture(scope="module")
def synthetic_cohort(tmp_path_factory):
    synthetic = pytest.importorskip("DefaceRTLib.synthetic")
    folder = tmp_path_factory.mktemp("cohort") / "input"
    cohort = synthetic.make_cohort(2, timepoints=1, size=96, slices=40, slice_thickness=5.0)
    synthetic.write_cohort(cohort, folder)
    return folder


def _run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "batch" / script), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_batch_deface_tree_and_compare_cohort(synthetic_cohort, tmp_path):
    out = tmp_path / "defaced"
    result = _run("deface_tree.py", synthetic_cohort, out)
    assert result.returncode == 0, result.stdout + result.stderr
    written = sorted(out.rglob("RTSTRUCT*.dcm"))
    assert len(written) == 2
    # the input is untouched and a second run refuses to overwrite
    again = _run("deface_tree.py", synthetic_cohort, out)
    assert again.returncode != 0

    # de-identified by default: one <pseudonym>/study_NNN folder per study, the map beside the output
    import pydicom

    from DefaceRTLib.deidentify import PseudonymMap

    assert "WARNING" not in result.stderr
    pseudonyms = {original: p.patient_id for original, _, p in PseudonymMap.load(tmp_path / "defaced-pseudonyms.csv").items()}
    manifest = tmp_path / "manifest.csv"
    rows = ["patient,original,compared"]
    for patient_dir in sorted(p for p in synthetic_cohort.iterdir() if p.is_dir()):
        original = patient_dir / "tp0"
        studies = sorted((out / pseudonyms[patient_dir.name]).glob("study_*"))
        assert len(studies) == 1, f"no output for {original}"
        defaced = studies[0]
        assert pydicom.dcmread(next(defaced.glob("RTSTRUCT*.dcm"))).PatientIdentityRemoved == "YES"
        rows.append(f"{patient_dir.name},{original},{defaced}")
    manifest.write_text("\n".join(rows) + "\n")
    table = tmp_path / "cohort"
    result = _run("compare_cohort.py", manifest, table)
    assert result.returncode == 0, result.stdout + result.stderr
    import csv

    with open(table / "tidy.csv", newline="") as fh:
        records = list(csv.DictReader(fh))
    assert {r["patient"] for r in records} == {p.name for p in synthetic_cohort.iterdir() if p.is_dir()}
    ptv = [r for r in records if r["structure"].upper().startswith("PTV")]
    assert ptv and all(float(r["dice"]) == pytest.approx(1.0) for r in ptv)
    body = [r for r in records if r["structure"].upper() in ("BODY", "EXTERNAL")]
    assert body and all(float(r["dice"]) < 1.0 for r in body)


def test_batch_script_without_dependencies_says_so(tmp_path):
    """Issue 15: ``python batch/deface_tree.py`` with a Python that lacks numpy and pydicom
    (``-S``: no site-packages) names the missing package and the Python, exits 6
    (not 1, "a check failed"), shows no traceback and writes nothing."""
    from DefaceRTLib.cli import EXIT_DEPENDENCY

    source = tmp_path / "in"
    source.mkdir()
    (source / "x.dcm").write_bytes(b"")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-S", str(ROOT / "batch" / "deface_tree.py"), str(source), str(out)],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == EXIT_DEPENDENCY == 6, result.stdout + result.stderr
    assert re.search(r"the package '(numpy|pydicom)' is not installed in ", result.stderr), result.stderr
    assert sys.executable in result.stderr and "make install" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_batch_scripts_run_under_slicer_style_argv(tmp_path):
    """``Slicer --python-script x.py args`` sets sys.argv like plain python;
    the scripts must not call sys.exit inside Slicer's interpreter without
    quitting Slicer, so they share one entry helper."""
    for script in BATCH:
        text = script.read_text()
        assert "run_main(" in text, f"{script.name} does not use batch/_batch.run_main"


@pytest.mark.skipif(shutil.which("Slicer") is None, reason="3D Slicer is not installed here")
def test_batch_under_slicer(synthetic_cohort, tmp_path):  # pragma: no cover - needs Slicer
    result = subprocess.run(
        ["Slicer", "--no-main-window", "--python-script", str(ROOT / "batch" / "deface_tree.py"), str(synthetic_cohort), str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_face_module_threshold_default_is_the_library_calibration():
    """The GUI's default match threshold is the library's calibrated one."""
    from DefaceRTLib.face.check import DEFAULT_THRESHOLD

    tree = ast.parse((ROOT / "FaceRecognitionQA" / "FaceRecognitionQA.py").read_text(encoding="utf-8"))
    defaults = [
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "threshold" and node.value is not None
    ]
    assert defaults == [DEFAULT_THRESHOLD]


# ------------------------------------------------- the review's defects (static and Qt-free parts)
def _module_source(module):
    return (ROOT / module / f"{module}.py").read_text(encoding="utf-8")


def test_segmentation_is_followed_through_the_parameter_node():
    """Defect 1: the selector's currentNodeChanged runs before the wrapper's own
    handler, so reacting to it reads the old segmentation; react to the
    parameter node instead."""
    source = _module_source("DefaceRT")
    assert "segmentationSelector.connect" not in source
    assert "def onParameterModified" in source
    assert "def onParameterModified" in (ADAPTER / "widget.py").read_text() and "self.onParameterModified()" in (ADAPTER / "widget.py").read_text()


def test_no_processevents_and_long_jobs_in_a_process():
    """Defect 6: no processEvents loops on the GUI thread; export, recognition
    and the cohort studies start a JobRunner (QProcess) and the action buttons
    are disabled while it runs; live preview goes through a single-shot timer."""
    for module in MODULES:
        source = _module_source(module)
        assert "processEvents" not in source, module
        assert "self.jobRunner.start(" in source, module
        assert "idle = not self.jobRunner.running" in source, module
    assert "self._previewTimer.start()" in _module_source("DefaceRT")


def test_manual_eye_centres_button_and_export_through_planes():
    """Defect 7: a button places eye centres by hand; Export builds its job from the planes."""
    classes, _ = ui_widgets(ROOT / "DefaceRT" / "Resources" / "UI" / "DefaceRT.ui")
    assert classes.get("placeEyeCentresButton") == "QPushButton"
    source = _module_source("DefaceRT")
    assert "self.logic.startPlacingEyeCentres(" in source and "self.logic.exportCommand(" in source


def test_uid_salt_is_not_a_parameter():
    """Defect 8: parameter nodes are saved in the scene; the salt must not be one."""
    fields = parameter_fields(ROOT / "DefaceRT" / "DefaceRT.py")
    assert not [f for f in fields if "salt" in f.lower() or "secret" in f.lower()]
    root = ET.parse(ROOT / "DefaceRT" / "Resources" / "UI" / "DefaceRT.ui").getroot()
    salt = next(w for w in root.iter("widget") if w.get("name") == "uidSaltLineEdit")
    props = {p.get("name"): p for p in salt.findall("property")}
    assert "SlicerParameterName" not in props
    assert props["echoMode"].findtext("enum") == "QLineEdit::Password"


def _path_line_edit_filters(module):
    root = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()
    out = {}
    for w in root.iter("widget"):
        if w.get("class") == "ctkPathLineEdit":
            props = {p.get("name"): p for p in w.findall("property")}
            out[w.get("name")] = props["filters"].findtext("set") if "filters" in props else ""
    return out


def test_output_file_paths_open_a_save_dialog():
    """Defect 9: a file path the module writes needs ctkPathLineEdit::Writable
    (otherwise Browse opens an Open dialog that wants an existing file)."""
    filters = _path_line_edit_filters("SegmentationCompare")
    assert "ctkPathLineEdit::Writable" in filters["csvPathLineEdit"]


def test_no_deprecated_look_from_view_axis():
    """Defect 10: ctkVTKRenderView.lookFromViewAxis is deprecated; lookFromAxis."""
    for path in module_scripts():
        assert "lookFromViewAxis" not in path.read_text(encoding="utf-8"), path.name
    assert "lookFromAxis(ctk.ctkAxesWidget.Anterior)" in _module_source("FaceRecognitionQA")


def test_self_tests_do_what_they_claim():
    """Defects 2 and 11: the face self-test needs no layout manager; the
    comparison self-test compares original with defaced structures."""
    face = _module_source("FaceRecognitionQA")
    assert "def showSurfacesSideBySide(self, p, layoutManager=None)" in face and "if layoutManager is None:" in face
    compare = _module_source("SegmentationCompare")
    test = compare[compare.index("class SegmentationCompareTest"):]
    assert 'segmentations["original"], segmentations["defaced"]' in test
    assert "segmentations[0], segmentations[0]" not in test


def test_screenshots_listed_in_cmake_exist():
    """Defect 12: every EXTENSION_SCREENSHOTURLS image is in the repository."""
    text = (ROOT / "CMakeLists.txt").read_text()
    urls = re.search(r"set\(EXTENSION_SCREENSHOTURLS \"([^\"]+)\"\)", text).group(1).split()
    assert len(urls) == 3
    for url in urls:
        relative = url.split("/raw/main/", 1)[1]
        assert (ROOT / relative).is_file(), relative


def test_batch_help_under_slicer_is_documented():
    """Defect 12: Slicer takes --help itself; the scripts need ``-- --help``."""
    readme = ROOT / "batch" / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    assert "-- --help" in text
    result = _run("deface_tree.py", "--", "--help")  # the separator Slicer needs is dropped
    assert result.returncode == 0 and "usage" in result.stdout.lower(), result.stderr


def test_default_ct_is_not_the_dose():
    """Defect 12: the default CT pick skips SlicerRT dose volumes (tested on MRML in test_slicercore_mrml)."""
    source = _module_source("DefaceRT")
    assert 'GetFirstNodeByClass("vtkMRMLScalarVolumeNode")' not in source
    assert "self.logic.defaultCtVolume(" in source


# ----------------------------------------------------- Qt-free adapter helpers
def test_progress_lines_are_parsed_from_the_library_output():
    import io

    from DefaceRTSlicerLib import jobs

    from DefaceRTLib.progress import TextProgress

    stream = io.StringIO()
    progress = TextProgress(stream=stream)
    progress(0, 3, "reading")
    progress(2, 3, "study 2: writing [CT]")
    progress(3, 3, "done")
    parsed = [jobs.parseProgress(line) for line in stream.getvalue().splitlines()]
    assert parsed == [(0, 3, "reading"), (2, 3, "study 2: writing [CT]"), (3, 3, "done")]
    assert jobs.parseProgress("defacert deface: error: no CT") is None


def test_library_command_runs_the_library_and_masks_the_secret():
    from DefaceRTSlicerLib import jobs

    command = jobs.libraryCommand(["info", "--help"], "info", secret=None)
    result = command.run(timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    secret = jobs.libraryCommand(["deface", "a", "b", "--salt", "xyz-secret"], secret="xyz-secret")
    assert "xyz-secret" not in secret.displayText() and "***" in secret.displayText()


class _FakeWrapper58:
    """What Slicer 5.8's parameterNodeWrapper does: connectGui keeps the tag, returns None."""

    def __init__(self):
        self._parameterGUIs = {}
        self._next = 0

    def connectGui(self, gui):
        self._parameterGUIs[self._next] = gui
        self._next += 1
        return None

    def disconnectGui(self, tag):
        self._parameterGUIs.pop(tag, None)


class _FakeWrapper510(_FakeWrapper58):
    def connectGui(self, gui):
        _FakeWrapper58.connectGui(self, gui)
        return self._next - 1


@pytest.mark.parametrize("wrapper_class", [_FakeWrapper58, _FakeWrapper510], ids=["5.8", "5.10+"])
def test_gui_connections_do_not_pile_up(wrapper_class):
    """Defect 5: entering the module again must not leave the old connection."""
    from DefaceRTSlicerLib import guiconnection

    wrapper = wrapper_class()
    for _enter in range(3):
        tags = guiconnection.connectGui(wrapper, "gui")
        assert len(wrapper._parameterGUIs) == 1
        guiconnection.disconnectGui(wrapper, tags)
        assert wrapper._parameterGUIs == {}


class _FakeSlicer:
    """Records what dependencies.ensure asks of Slicer (no Slicer here)."""

    def __init__(self, testing, confirm=True, has_packaging=True):
        import types

        self.calls = []
        outer = self
        self.app = types.SimpleNamespace(testingEnabled=lambda: testing)
        self.util = types.SimpleNamespace(
            confirmOkCancelDisplay=lambda *a, **k: outer.calls.append("confirm") or confirm,
            pip_install=lambda args: outer.calls.append(("pip_install", args)),
        )
        if has_packaging:
            self.packaging = types.SimpleNamespace(pip_ensure=lambda reqs, **kw: outer.calls.append(("pip_ensure", kw)))


def test_dependencies_never_install_under_testing_and_ask_once(monkeypatch):
    """Defect 3: under --testing nothing is installed and ensure() returns
    False (self-tests skip); otherwise the user is asked once, by us."""
    from DefaceRTSlicerLib import dependencies

    monkeypatch.setattr(dependencies, "missing", lambda group: ["scikit-image>=0.22"])
    testing = _FakeSlicer(testing=True)
    assert dependencies._ensureWith(testing, "deface", None, ask=False) is False
    assert testing.calls == []
    user = _FakeSlicer(testing=False)
    with pytest.raises(RuntimeError, match="still not importable"):  # the fake installs nothing
        dependencies._ensureWith(user, "deface", None, ask=True)
    assert user.calls[0] == "confirm" and user.calls[1][0] == "pip_ensure"
    assert user.calls[1][1]["prompt_install"] is False
    declined = _FakeSlicer(testing=False, confirm=False)
    assert dependencies._ensureWith(declined, "deface", None, ask=True) is False
    assert declined.calls == ["confirm"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI must have every test environment")
def test_slicercore_environment_exists_in_ci():
    """CI fails, not skips, when the slicer-core environment is missing."""
    venv = Path(os.environ.get("DEFACERT_SLICERCORE_VENV", ROOT / ".venv-slicercore"))
    python = venv / "bin" / "python"
    assert python.exists(), f"{venv} is missing: make installcore"
    result = subprocess.run([str(python), "-c", "from slicer import vtkMRMLScene, vtkSlicerSegmentationsModuleLogic"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cancelled_export_leaves_no_output(tmp_path):
    """Cancel kills the export process (as JobRunner.cancel does); the
    half-written study is removed and the output folder does not exist."""
    import time

    from DefaceRTSlicerLib import jobs

    from DefaceRTLib import synthetic

    source = synthetic.write_patient(synthetic.make_patient(seed=2, size=256, slices=64, slice_thickness=3.0), tmp_path / "in")
    output = tmp_path / "out"
    command = jobs.libraryCommand(["deface", str(source), str(output), "--no-qa-figure"], "export")
    process = subprocess.Popen([command.program, *command.args], env=command.environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # cancel as soon as the study is being written (its staging folder exists)
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob(".out.partial-*/*")):
            assert process.poll() is None, "the export ended before it wrote anything to cancel"
            assert time.monotonic() < deadline, "the export did not start writing"
            time.sleep(0.005)
        process.kill()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.1)
    assert list(tmp_path.glob(".out.partial-*")), "nothing partial to clean up?"
    assert jobs.removePartialOutput(output)
    assert not output.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_remove_partial_output_also_removes_qa_staging(tmp_path):
    """A cancelled job's QA staging folders (they show the original face) go
    too, the default and a chosen QA folder; other folders stay."""
    from DefaceRTSlicerLib import jobs

    output = tmp_path / "out"
    staged = [tmp_path / ".out.partial-1", tmp_path / ".out-qa.partial-2", tmp_path / "qa" / ".mine.partial-3"]
    keep = [tmp_path / "out-qa", tmp_path / ".other.partial-4"]
    for d in staged + keep:
        d.mkdir(parents=True)
        (d / "deface_qa.png").write_bytes(b"face")
    removed = jobs.removePartialOutput(output) + jobs.removePartialOutput(output, tmp_path / "qa" / "mine")
    assert sorted(removed) == sorted(str(d) for d in staged)
    assert not any(d.exists() for d in staged) and all(d.exists() for d in keep)
