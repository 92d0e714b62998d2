"""Which ToolAgent prompt works: system prompts and observation wordings, on the dev seed.

Compares, on the everyday agent tasks of ``benchmarks/agent_tasks.py`` generated with the
dev seed (1; the reported tables use seed 2, so nothing reported was tuned on):

* system prompts: ``tool_agent.md`` (the ToolAgent's), ``demo`` (the function-calling
  prompt of ``agentctl demo-call``, ``tools/prompts/tool_call.md``, with a final-answer
  form added) and ``fc2`` (a mix of the two);
* observation wordings: ``Observation: 8439``, ``Observation: 8439`` plus the task
  again, and ``Observation: the result is 8439`` (``tool_observation.md``).

Prints one line per run and a success table per (variant, family)::

    python benchmarks/agent_prompts.py --n 6
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from agent_tasks import FAMILIES, check, make_items  # the sibling script

from slmkit.agents import ToolAgent
from slmkit.models import Message, load_model, load_prompt, render_template
from slmkit.tools import describe_tools

_FORMS = {"call": '{"name": ..., "arguments": {...}}', "answer": '{"final_answer": ...}'}
SYSTEM = {
    "tool_agent": load_prompt("slmkit.agents", "tool_agent.md"),
    "demo": "You are a function-calling assistant. Answer the user by calling the function "
    "that fits their request. Reply with JSON only, in the form "
    '{"name": "<function name>", "arguments": {"<argument>": <value>}}. Copy argument values '
    'from the user\'s request. After each call you get its result as "Observation: ...". '
    'When you know the answer, reply {"final_answer": "<the answer>"}.\n\n'
    "Functions:\n{{ tools }}",
    "fc2": "You are a function-calling assistant. Answer the user by calling the function that "
    "fits their request. Reply with JSON only, in the form {{ call }}. Copy argument values "
    'from the user\'s request. After each call you get its result as "Observation: ..."; '
    "then reply {{ answer }} with the result.\n\nFunctions:\n{{ tools }}",
}
OBSERVATION = {
    "plain": "Observation: {o}",
    "task": "Observation: {o}\nTask: {t}",
    "result": "Observation: the result is {o}",
}


class Variant(ToolAgent):
    """A ToolAgent with another system prompt and observation wording (class-level)."""

    system = SYSTEM["tool_agent"]
    observation = OBSERVATION["result"]

    def _system_prompt(self) -> str:
        tools = describe_tools(self.registry)
        return render_template(self.system, tools=tools, **_FORMS).strip()

    def _model_view(self, messages: list[Message]) -> list[Message]:
        view = super()._model_view(messages)
        task = next(str(m.get("content")) for m in messages if m["role"] == "user")
        lead = "Observation: the result is "
        out: list[Message] = []
        for m in view:
            text = str(m.get("content") or "")
            if m["role"] == "user" and text.startswith(lead):
                text = self.observation.format(o=text[len(lead) :], t=task)
            out.append({**m, "content": text})
        return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="llamacpp:smollm2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--systems", default=",".join(SYSTEM))
    parser.add_argument("--observations", default=",".join(OBSERVATION))
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    model = load_model(args.model)
    table: list[tuple[str, str, int]] = []
    for system in args.systems.split(","):
        for observation in args.observations.split(","):
            Variant.system, Variant.observation = SYSTEM[system], OBSERVATION[observation]
            for family in args.families.split(","):
                ok = 0
                for item in make_items(family, args.n, args.seed):
                    agent: Any = Variant(model, list(item.tools), max_steps=4, checkpoint="none")
                    result = agent.run(item.question)
                    right = check(result.answer, item.expected)
                    ok += right
                    print(system, observation, family, right, item.question, repr(result.answer))
                table.append((f"{system} / {observation}", family, ok))
    print("\n| system / observation | family | success |\n|---|---|---|")
    for name, family, ok in table:
        print(f"| {name} | {family} | {ok}/{args.n} |")


if __name__ == "__main__":
    main()
