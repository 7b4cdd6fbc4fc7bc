"""Drives a running dbtree server through the Python client that openapi-python-client generated
from openapi/dbtree.json: sign in with the code from the server's log, win a lemon (answer the
quiz, click the moving circle), create the cheapest instance, check it answers, delete it.

Usage: python3 driver.py <generated-client-dir> <base-url> <server-log> <email>
Exits non-zero, naming the failed step, on the first wrong answer.
"""

import math
import re
import socket
import sys
import time


def centre_at(challenge, t_ms):
    """The circle's centre t_ms after it appeared, in fractions of the play area
    (PRODUCT.md 4.2; dbtree-core's ClickChallenge::centre_at):
    x = 0.5 + 0.4·sin(2π·fx·t/periodMs + phase), y = 0.5 + 0.4·sin(2π·fy·t/periodMs)."""
    base = 2 * math.pi * t_ms / max(challenge.period_ms, 1)
    x = 0.5 + 0.4 * math.sin(challenge.fx * base + challenge.phase)
    y = 0.5 + 0.4 * math.sin(challenge.fy * base)
    return x, y


class Failed(Exception):
    pass


def expect(what, ok):
    if not ok:
        raise Failed(f"expected {what}")


def ok(response, status, step):
    """The parsed body of a response with the expected status (the generated client returns the
    ErrorBody model for documented error statuses)."""
    if response.status_code != status:
        raise Failed(f"{step}: HTTP {int(response.status_code)}: {response.content[:300]!r}")
    return response.parsed


def code_from_log(log, email):
    pattern = re.compile(re.escape(f"sign-in code for {email}: ") + r"(\d{6})")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log, encoding="utf-8", errors="replace") as f:
            found = pattern.findall(f.read())
        if found:
            return found[-1]
        time.sleep(0.1)
    raise Failed(f"no sign-in code for {email} in {log}")


def redis_answers(port, username, password):
    """AUTH as the tenant's ACL user, then PING over RESP: expects +OK and +PONG."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(
            f"*3\r\n$4\r\nAUTH\r\n${len(username)}\r\n{username}\r\n"
            f"${len(password)}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n".encode()
        )
        reply = b""
        while b"+PONG" not in reply and b"-" not in reply[:1]:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    expect(f"+OK then +PONG, got {reply!r}", reply == b"+OK\r\n+PONG\r\n")


def drive(base, log, email):
    from dbtree_client import AuthenticatedClient, Client
    from dbtree_client.api.accounts import create_session, get_profile, request_code
    from dbtree_client.api.catalog import list_presets
    from dbtree_client.api.instances import create_instance, delete_instance, get_instance
    from dbtree_client.api.tree import answer_quiz, get_tree, harvest, start_quiz
    from dbtree_client.models import (
        AnswerRequest,
        CodeRequest,
        CreateInstanceRequest,
        EngineDto,
        HarvestRequest,
        LemonStateDto,
        SessionRequest,
        StatusDto,
    )

    api = base.rstrip("/") + "/api"
    anonymous = Client(base_url=api)

    # 1. Sign in with the code the console mailer wrote to the server's log.
    ok(request_code.sync_detailed(client=anonymous, body=CodeRequest(email=email)), 202, "request code")
    code = code_from_log(log, email)
    session = ok(
        create_session.sync_detailed(client=anonymous, body=SessionRequest(email=email, code=code)),
        201,
        "create session",
    )
    welcome = session.profile.balance
    expect("a new user", session.is_new_user)
    expect(f"welcome bonus 15, got {welcome}", welcome == 15)
    print(f"signed in as {email}: balance {welcome}")
    client = AuthenticatedClient(base_url=api, token=session.token)

    # 2. Win a ripe lemon. The right option is revealed only after an answer, so a wrong first
    #    guess is followed by a second attempt with the revealed option.
    tree = ok(get_tree.sync_detailed(client=anonymous), 200, "tree")
    ripe = [lemon.position for lemon in tree.lemons if lemon.state == LemonStateDto.RIPE]
    expect("a ripe lemon", bool(ripe))
    position = ripe[-1]
    option, attempt, challenge = 0, None, None
    for _ in range(2):
        quiz = ok(start_quiz.sync_detailed(position, client=client), 201, "start quiz")
        answer = ok(
            answer_quiz.sync_detailed(quiz.attempt_id, client=client, body=AnswerRequest(option=option)),
            200,
            "answer",
        )
        if answer.correct:
            attempt, challenge = quiz.attempt_id, answer.challenge
            break
        option = answer.correct_option
    expect("a right answer with a challenge", attempt is not None and challenge is not None)

    offset_ms = 700
    time.sleep(offset_ms / 1000)
    x, y = centre_at(challenge, offset_ms)
    won = ok(
        harvest.sync_detailed(
            attempt, client=client, body=HarvestRequest(click_offset_ms=offset_ms, x=x, y=y)
        ),
        200,
        "harvest",
    )
    expect(f"reward 3, got {won.reward}", won.reward == 3)
    expect(f"balance {welcome + 3}, got {won.balance}", won.balance == welcome + 3)
    print(f"won lemon {position}: +{won.reward} -> balance {won.balance}")

    # 3. Create the cheapest preset the balance affords (creation cost + one hour).
    presets = ok(list_presets.sync_detailed(client=anonymous), 200, "presets")
    cheapest = min(
        presets,
        key=lambda p: (p.price.creation_cost + p.price.hourly_cost, p.price.hourly_cost),
    )
    needed = cheapest.price.creation_cost + cheapest.price.hourly_cost
    expect(f"balance {won.balance} covers {needed}", won.balance >= needed)
    name = f"py-driver-{int(time.time()) % 100000}"
    created = ok(
        create_instance.sync_detailed(
            client=client,
            body=CreateInstanceRequest(name=name, engine=cheapest.engine, preset=cheapest.preset),
        ),
        201,
        "create instance",
    )
    password = created.credentials.password
    username = created.credentials.username
    expect("a 24-character password", len(password) == 24)
    print(f"created {cheapest.engine.value} {cheapest.preset.value} {name}: {cheapest.price.creation_cost} lemons")
    profile = ok(get_profile.sync_detailed(client=client), 200, "profile")
    expect(
        f"balance after creation {profile.balance}",
        profile.balance == won.balance - cheapest.price.creation_cost,
    )

    # 4. Wait until it runs, and (for Redis) check it answers with the one-time password.
    instance_id = created.instance.id
    deadline = time.monotonic() + 60
    while True:
        detail = ok(get_instance.sync_detailed(instance_id, client=client), 200, "instance")
        if detail.status == StatusDto.RUNNING:
            break
        expect(f"provisioning, not {detail.status.value}", detail.status == StatusDto.PROVISIONING)
        expect("running within 60 s", time.monotonic() < deadline)
        time.sleep(0.25)
    if cheapest.engine == EngineDto.REDIS:
        redis_answers(detail.node_port, username, password)
        print(f"redis on port {detail.node_port} answers PONG with the one-time password")
    ok(delete_instance.sync_detailed(instance_id, client=client), 200, "delete instance")
    print(f"deleted {name}")


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: driver.py <generated-client-dir> <base-url> <server-log> <email>")
    generated, base, log, email = sys.argv[1:]
    sys.path.insert(0, generated)
    try:
        drive(base, log, email)
    except Failed as e:
        print(f"python driver: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("python driver: passed")


if __name__ == "__main__":
    main()
