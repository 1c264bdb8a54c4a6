"""Plugin discovery and registries: entry points, --plugin, PGOLF_PLUGINS, clear failures."""

import sys
import types

import pytest

from pgolf_core import hookimpl
from pgolf_core.api import BuildContext
from pgolf_core.errors import PluginError, UsageError
from pgolf_core.plugins import load_plugins


def test_builtins_come_from_the_entry_point_group(plugins):
    sources = {i.name: i.source for i in plugins.info}
    assert sources["core"] == "entry point"
    assert "uniform" in plugins.experts.names()


def test_loading_plugins_imports_neither_torch_nor_numba():
    import subprocess

    code = ("import sys; from pgolf_core.plugins import load_plugins; load_plugins(); "
            "bad = [m for m in ('torch', 'numba') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_name_lists_known_names_and_suggests():
    plugins = load_plugins(autoload=False, modules=["pgolf_core.builtin"])
    with pytest.raises(UsageError) as err:
        plugins.experts.get("unifrom")
    assert "Did you mean 'uniform'" in str(err.value) and "Known experts: uniform" in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_option_is_an_error_with_a_suggestion():
    plugins = load_plugins(autoload=False, modules=["sample_plugin"])
    with pytest.raises(UsageError, match="has no option 'alpah'. Did you mean 'alpha'"):
        plugins.experts.create("counting", BuildContext(vocab_size=8), alpah=2)


def test_plugin_module_and_env_variable(monkeypatch):
    plugins = load_plugins(autoload=False, modules=["sample_plugin"])
    assert plugins.experts.get("counting").plugin == "sample_plugin"
    monkeypatch.setenv("PGOLF_PLUGINS", "sample_plugin")
    plugins = load_plugins(autoload=False)
    assert [i.source for i in plugins.info] == ["PGOLF_PLUGINS"]


def test_plugin_that_fails_to_import_is_reported_by_name():
    with pytest.raises(PluginError, match=r"plugin module 'no_such_pgolf_plugin' \(from --plugin\) failed to import"):
        load_plugins(autoload=False, modules=["no_such_pgolf_plugin"])


def test_misspelled_hook_fails_loudly(monkeypatch):
    mod = types.ModuleType("typo_plugin")

    @hookimpl
    def pgolf_register_expert(register):  # missing "s"
        pass

    mod.pgolf_register_expert = pgolf_register_expert
    monkeypatch.setitem(sys.modules, "typo_plugin", mod)
    with pytest.raises(PluginError, match="unknown pgolf hook"):
        load_plugins(autoload=False, modules=["typo_plugin"])


def test_duplicate_names_are_refused():
    plugins = load_plugins(autoload=False, modules=["pgolf_core.builtin"])

    class Dup:
        @hookimpl
        def pgolf_register_experts(self, register):
            register("uniform", lambda ctx: None)

    with pytest.raises(PluginError, match="already registered by plugin 'pgolf_core.builtin'"):
        plugins.add(Dup(), name="dup")


@pytest.fixture
def registered_object(plugins):
    """Register a plugin object for one test and remove it afterwards."""

    class Extra:
        @hookimpl
        def pgolf_register_mixers(self, register):
            register("first-only", lambda ctx: None, description="test", aliases=["fo"])

    plugins.add(Extra(), name="extra")
    yield plugins
    plugins.remove("extra")
    assert "first-only" not in plugins.mixers.names()


def test_register_and_unregister_an_object(registered_object):
    assert registered_object.mixers.get("fo").name == "first-only"
