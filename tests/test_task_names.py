"""Services send tasks by their registered name (imports run one way: tasks import services).
Each name a service sends must be a task the workers register, or the job would never run."""

import subprocess
import sys

import pytest

from annotation.services.agreement.cache import REFRESH_TASK
from annotation.services.export.jobs import EXPORT_TASK
from annotation.services.imports.jobs import IMPORT_TASK
from judging.services.generation import GENERATE_TASK
from judging.services.runs import BATCH_TASK
from spavl_web.jobs import registered_task


@pytest.mark.parametrize(
    "name", [EXPORT_TASK, BATCH_TASK, REFRESH_TASK, IMPORT_TASK, GENERATE_TASK]
)
def test_every_task_a_service_sends_is_registered(name):
    assert registered_task(name).name == name


def test_a_misspelt_task_name_fails_loudly():
    with pytest.raises(KeyError):
        registered_task("annotation.tasks.no_such_task")


def test_no_service_module_imports_a_tasks_module():
    """In a fresh interpreter, importing every service leaves the tasks modules unimported."""
    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
        " 'spavl_web.settings'); django.setup();"
        "import annotation.services.recovery, annotation.services.agreement.cache,"
        " annotation.services.export, annotation.services.imports.jobs, judging.services;"
        "print(sorted(m for m in sys.modules if m in ('annotation.tasks', 'judging.tasks')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
