"""The pure rules: emails, token claims, when a refresh token may be used, when a ban applies, when a login
must wait."""

from datetime import UTC, datetime, timedelta

from auth.domain import (
    LOCKOUT_MAX,
    LOGIN_FAILURE_WINDOW,
    BanDecision,
    LoginAttempts,
    RefreshVerdict,
    StoredRefreshToken,
    access_claims,
    charge_login_attempt,
    decide_ban,
    judge_refresh,
    normalise_email,
    normalise_name,
    refresh_token_hash,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=14)


def test_emails_are_one_spelling_whatever_the_case():
    assert normalise_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"


def test_a_blank_name_is_no_name():
    assert normalise_name("   ") is None and normalise_name(None) is None
    assert normalise_name(" Ann ") == "Ann"


def test_access_claims_carry_the_contracts_fields_and_expire_after_the_lifetime():
    claims = access_claims(user_id=7, email="a@example.com", role="admin", now=NOW, lifetime=timedelta(minutes=15))
    assert claims["sub"] == "7" and claims["email"] == "a@example.com" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 15 * 60 and claims["iat"] == int(NOW.timestamp())
    other = access_claims(user_id=7, email="a@example.com", role="admin", now=NOW, lifetime=timedelta(minutes=15))
    assert claims["jti"] != other["jti"]


def test_refresh_tokens_are_stored_as_sha256_hex_not_as_themselves():
    digest = refresh_token_hash("abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert refresh_token_hash("abd") != digest


def test_a_fresh_refresh_token_is_usable():
    assert judge_refresh(StoredRefreshToken(LATER, None, None), NOW) is RefreshVerdict.USABLE


def test_a_spent_refresh_token_is_a_reuse_even_once_expired():
    assert judge_refresh(StoredRefreshToken(LATER, NOW, None), NOW) is RefreshVerdict.REUSED
    assert judge_refresh(StoredRefreshToken(NOW - timedelta(days=1), NOW - timedelta(days=2), None), NOW) is RefreshVerdict.REUSED


def test_a_revoked_refresh_token_is_revoked_whatever_else():
    assert judge_refresh(StoredRefreshToken(LATER, NOW, NOW), NOW) is RefreshVerdict.REVOKED
    assert judge_refresh(StoredRefreshToken(NOW, None, NOW), NOW) is RefreshVerdict.REVOKED


def test_a_refresh_token_expires_at_its_expiry():
    assert judge_refresh(StoredRefreshToken(NOW, None, None), NOW) is RefreshVerdict.EXPIRED
    assert judge_refresh(StoredRefreshToken(NOW + timedelta(seconds=1), None, None), NOW) is RefreshVerdict.USABLE


def test_ban_rules():
    assert decide_ban(admin_id=1, user_id=2, already_banned=False) is BanDecision.BAN
    assert decide_ban(admin_id=1, user_id=2, already_banned=True) is BanDecision.ALREADY_BANNED
    assert decide_ban(admin_id=1, user_id=1, already_banned=False) is BanDecision.SELF


def charged(times: int, start: LoginAttempts | None = None, every: timedelta = timedelta(0)) -> LoginAttempts:
    """`times` tries charged one after another, each `every` after the last, each after any lockout."""
    attempts = start or LoginAttempts(0, NOW, None)
    for _ in range(times):
        now = max(attempts.last_at + every, attempts.locked_until or attempts.last_at)
        result = charge_login_attempt(attempts, now)
        assert isinstance(result, LoginAttempts), f"refused at {attempts}"
        attempts = result
    return attempts


def test_five_failed_logins_are_free_then_each_try_waits_twice_as_long_up_to_30_s():
    assert charged(4).locked_until is None
    waits = [(a.locked_until - a.last_at).total_seconds() for a in (charged(n) for n in range(5, 12))]
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert LOCKOUT_MAX == timedelta(seconds=30)


def test_a_locked_account_is_refused_with_the_wait_and_the_refusal_is_not_charged():
    locked = charged(7)  # waits 4 s
    wait = charge_login_attempt(locked, locked.last_at + timedelta(seconds=1))
    assert wait == timedelta(seconds=3)
    assert charge_login_attempt(locked, locked.last_at + timedelta(seconds=1)) == wait  # no longer for asking
    after = charge_login_attempt(locked, locked.locked_until)
    assert isinstance(after, LoginAttempts) and after.failures == 8


def test_failures_are_forgotten_after_a_quiet_window():
    locked = charged(9)
    later = charge_login_attempt(locked, locked.last_at + LOGIN_FAILURE_WINDOW + timedelta(seconds=1))
    assert later == LoginAttempts(1, locked.last_at + LOGIN_FAILURE_WINDOW + timedelta(seconds=1), None)
