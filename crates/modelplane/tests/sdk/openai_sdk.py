"""Drives modelplane's /v1 with the official `openai` Python SDK.

Run by the `openai_sdk` integration test with MP_BASE_URL (the gateway's
/v1) and MP_TOKEN (a key with the gateway scope). Exits non-zero on the
first surprise.
"""

import os

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["MP_BASE_URL"], api_key=os.environ["MP_TOKEN"], max_retries=0)

models = [m.id for m in client.models.list()]
assert models == ["chat-default", "embed"], models

chat = client.chat.completions.create(
    model="chat-default", messages=[{"role": "user", "content": "hi"}]
)
assert chat.choices[0].message.content == "served by gpt-4o", chat
assert chat.usage.total_tokens == 8, chat.usage

parts = []
for chunk in client.chat.completions.create(
    model="chat-default", messages=[{"role": "user", "content": "hi"}], stream=True
):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
assert "".join(parts) == "Hello", parts

usage_seen = None
for chunk in client.chat.completions.create(
    model="chat-default",
    messages=[{"role": "user", "content": "hi"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage_seen = chunk.usage.total_tokens
assert usage_seen == 9, usage_seen

emb = client.embeddings.create(model="embed", input="hello")
assert emb.data[0].embedding == [0.25, -0.5], emb

try:
    client.chat.completions.create(model="no-such-model", messages=[])
    raise SystemExit("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404
    assert e.code == "model_not_found", e.body

try:
    OpenAI(base_url=os.environ["MP_BASE_URL"], api_key="mp_wrong", max_retries=0).models.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e.body

print("openai sdk: ok")
