"""The seed's reward-model input templates ("plain" template, no system prompt)."""

from __future__ import annotations

from align2.data.schema import IMAGE_TOKEN

QUESTION, ANSWER = "question", "answer"
KINDS = (QUESTION, ANSWER)


def strip_image_token(text: str) -> str:
    return text.replace(IMAGE_TOKEN, "").strip()


def answer_text(question: str, answer: str) -> str:
    """Input of the answer model g(I, Q, A)."""
    return f"{IMAGE_TOKEN}\nQuestion: {strip_image_token(question)}\nAnswer: {answer}\n"


def question_text(questions: list[str]) -> str:
    """Input of the question model f(I, Q): all human turns of a conversation together."""
    return f"{IMAGE_TOKEN}\n" + "\n".join(strip_image_token(q) for q in questions)


def render(kind: str, prompt: str, completion: str) -> str:
    """A preference row's text. For questions the completion holds the joined questions."""
    if kind == ANSWER:
        return answer_text(prompt, completion)
    return question_text(completion.split("\n"))


def render_pairs(batch: dict) -> dict:
    """A batch of preference pairs (kind, prompt, chosen, rejected) -> the two model inputs."""
    rows = list(
        zip(batch["kind"], batch["prompt"], batch["chosen"], batch["rejected"], strict=True)
    )
    return {
        "chosen": [render(kind, prompt, chosen) for kind, prompt, chosen, _ in rows],
        "rejected": [render(kind, prompt, rejected) for kind, prompt, _, rejected in rows],
    }
