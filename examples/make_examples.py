"""Writes the quickstart's synthetic support-ticket data (re-run to regenerate; output is deterministic)."""

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent
CUES = {
    "billing": [
        "I was charged twice", "my invoice shows the wrong amount", "please refund my last payment",
        "the subscription fee went up", "my credit card was declined", "I need a receipt for my order",
        "cancel my plan and stop the billing", "there is an unknown charge on my statement",
    ],
    "technical": [
        "the app crashes when I log in", "I cannot reset my password", "the page shows an error 500",
        "sync stopped working after the update", "the screen freezes on startup", "notifications never arrive",
        "I get a timeout when uploading files", "the login button does nothing",
    ],
    "shipping": [
        "my parcel has not arrived", "the tracking number does not work", "the box arrived damaged",
        "can you change my delivery address", "the courier left it at the wrong door", "delivery is two weeks late",
        "I received someone else's package", "when will my order ship",
    ],
}  # fmt: skip
OPENERS = ["Hi,", "Hello team,", "Good morning.", "Hey there,", "Dear support,", ""]
CLOSERS = ["Thanks.", "Please help.", "This is urgent!", "Regards, Sam", "Any update?", "", "Cheers"]
FILLER = ["since yesterday", "again", "for the third time", "this week", "on my account", "today", ""]


def ticket(rng: random.Random, department: str) -> str:
    cue = rng.choice(CUES[department])
    parts = [rng.choice(OPENERS), cue[0].upper() + cue[1:], rng.choice(FILLER) + ".", rng.choice(CLOSERS)]
    return " ".join(p for p in parts if p and p != ".").replace(" .", ".")


def main() -> None:
    rng = random.Random(7)
    departments = list(CUES)
    with open(HERE / "support_tickets.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "message", "department"])
        for i in range(1200):
            department = rng.choice(departments)
            text = ticket(rng, department)
            if rng.random() < 0.08:  # mislabelled tickets, as in real support queues
                department = rng.choice([d for d in departments if d != department])
            writer.writerow([f"T{i:05d}", text, department])
    with open(HERE / "new_tickets.txt", "w", encoding="utf-8") as f:
        for _ in range(20):
            f.write(ticket(rng, rng.choice(departments)) + "\n")


if __name__ == "__main__":
    main()
