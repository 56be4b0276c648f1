"""Watch retries, provider failover and channel fallback happen, with providers that fail.

python examples/retries_and_failover.py
"""

import anysend
from anysend import ErrorCategory
from anysend.testing import MemoryProvider, VirtualClock

primary_sms = MemoryProvider(name="sms-primary", channels={"sms"})
backup_sms = MemoryProvider(name="sms-backup", channels={"sms"})
email = MemoryProvider(name="email", channels={"email"})

# The primary SMS gateway is down, the backup throttles once and then answers;
# the virtual clock makes the waits take no real time and records them.
primary_sms.fail_always(ErrorCategory.UNAVAILABLE)
backup_sms.fail(ErrorCategory.RATE_LIMITED, retry_after=2)
clock = VirtualClock()

ann = anysend.Recipient(email="ann@example.com", phone="+48 600 700 800")
with anysend.Client([primary_sms, backup_sms, email], clock=clock) as client:
    result = client.send(anysend.Message(text="Your code is 123456"), to=ann, via=["sms", "email"])

for attempt in result.attempts:
    error = attempt.error.category.value if attempt.error else ""
    print(f"{attempt.provider:12} try {attempt.number}: {attempt.outcome.value:6} {error}")
print(f"waited {clock.sleeps} (backoff, then the provider's Retry-After)")
print(f"result: {result.status.value} via {result.provider}")
assert result.provider == "sms-backup"
