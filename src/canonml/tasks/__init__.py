"""Tasks as plug-ins (DESIGN §7): one module per task, a ``TASKS`` registry keyed by name.

``get_task(spec)`` is how a stage finds the task of a spec (or of a package's manifest);
every difference between tasks is a method of the task object, never a branch on its name.
A task module imports torch only inside its methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canonml.registry import Registry

if TYPE_CHECKING:
    from canonml.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task", "task")


def get_task(spec_or_name: Any) -> Task:
    """The task of a ``Spec``, of its ``task`` section, or called by a name."""
    from canonml.spec.task import TaskSpec, task_name

    task = getattr(spec_or_name, "task", spec_or_name)
    name = task.name if isinstance(task, TaskSpec) else task_name(task)
    made = TASKS.get(name)()
    made.options = task if isinstance(task, TaskSpec) else None  # a name: the defaults
    return made


from canonml.tasks import classification, regression  # noqa: E402,F401  (registration)

# isort: split
from canonml.tasks import reconstruction  # noqa: E402,F401  (registration)

# isort: split
from canonml.tasks import generation  # noqa: E402,F401  (registration)

# isort: split
from canonml.tasks import language_modeling  # noqa: E402,F401  (registration)
