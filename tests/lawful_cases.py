"""The lawful-time table: when a patient's text (or email) for one occurrence goes.

Each case is a patient (stored zone, state, phone), an occurrence and send time,
and the instant the message must go (UTC) or SKIP, with the source that says so
(a row of /work/shared/COMPLIANCE.md and the rule it cites). ``cites`` is a piece
of the deciding rule's source the answer must quote when the rule held or skipped
the message. Expected instants were worked out by hand from the rules, not read
back from the code. Used by tests/test_lawful_time.py (the clock) and
tests/test_campaigns_when.py (the command line).

Dates are in 2027: US daylight time runs from Sun 14 Mar to Sun 7 Nov.
Wed 2027-10-13 is a plain weekday in every state (EDT -4, CDT -5, MDT -6, PDT -7,
AKDT -8, HDT -9 (Adak), HST -10, SST -11).
"""

from __future__ import annotations

from dataclasses import dataclass

SKIP = "skip"
FEDERAL = "47 CFR 64.1200(c)(1) (COMPLIANCE.md: quiet hours, federal)"
WHERE = "COMPLIANCE.md: where the recipient is (address and area code disagree, or a code spans zones: lawful in every candidate)"  # noqa: E501
NO_EVIDENCE = "issue #13 item 1: no evidence, so every zone the clinic serves (Hawaii..East)"


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    timezone: str | None
    state: str | None
    phone: str | None
    occurrence: str
    send_time: str
    expect: str  # "2027-10-13T14:00Z" or SKIP
    channel: str = "sms"
    grace_hours: float = 6
    cites: str | None = None  # a piece of the deciding rule's source, when a rule decided
    cap: int | None = None  # the lowest per-24-hour cap of the candidate states
    service_zones: tuple[str, ...] | None = None


def _p(area: str, line: str = "0142") -> str:
    return f"+1{area}555{line}"


CASES: tuple[Case, ...] = (
    # -- federal window, one certain place -------------------------------------------
    Case("ny-ten", FEDERAL, "America/New_York", "NY", _p("212"), "2027-10-13", "10:00",
         "2027-10-13T14:00Z"),
    Case("ny-seven-waits-for-eight", FEDERAL, "America/New_York", "NY", _p("212"),
         "2027-10-13", "07:00", "2027-10-13T12:00Z", cites="64.1200"),
    Case("ny-nine-pm-skipped", FEDERAL, "America/New_York", "NY", _p("212"), "2027-10-13",
         "21:00", SKIP, cites="64.1200"),
    Case("ny-last-minute", FEDERAL, "America/New_York", "NY", _p("212"), "2027-10-13", "20:59",
         "2027-10-14T00:59Z"),
    Case("ny-on-thanksgiving", FEDERAL + "; no federal holiday rule", "America/New_York", "NY",
         _p("212"), "2027-11-25", "10:00", "2027-11-25T15:00Z"),
    Case("honolulu", FEDERAL, "Pacific/Honolulu", "HI", _p("808"), "2027-10-13", "10:00",
         "2027-10-13T20:00Z"),
    Case("anchorage-stored", FEDERAL, "America/Anchorage", "AK", _p("907"), "2027-10-13",
         "10:00", "2027-10-13T18:00Z"),
    Case("ny-zone-and-212-agree", FEDERAL, "America/New_York", None, _p("212"), "2027-10-13",
         "10:00", "2027-10-13T14:00Z"),
    # -- DST days --------------------------------------------------------------------
    Case("spring-forward-gap-then-eight", FEDERAL + "; 02:30 does not exist on 2027-03-14",
         "America/New_York", "NY", _p("212"), "2027-03-14", "02:30", "2027-03-14T12:00Z",
         cites="64.1200"),
    Case("spring-forward-ten-is-edt", FEDERAL, "America/New_York", "NY", _p("212"),
         "2027-03-14", "10:00", "2027-03-14T14:00Z"),
    Case("day-before-spring-forward-is-est", FEDERAL, "America/New_York", "NY", _p("212"),
         "2027-03-13", "10:00", "2027-03-13T15:00Z"),
    Case("fall-back-ambiguous-first-instance", FEDERAL + "; 01:30 happens twice on 2027-11-07",
         "America/New_York", "NY", _p("212"), "2027-11-07", "01:30", "2027-11-07T13:00Z",
         grace_hours=8, cites="64.1200"),
    Case("fall-back-ambiguous-past-grace", FEDERAL, "America/New_York", "NY", _p("212"),
         "2027-11-07", "01:30", SKIP, cites="64.1200"),
    Case("fall-back-ten-is-est", FEDERAL, "America/New_York", "NY", _p("212"), "2027-11-07",
         "10:00", "2027-11-07T15:00Z"),
    Case("texas-sunday-noon-on-spring-forward", "Tex. Bus. & Com. Code 301.051",
         "America/Chicago", "TX", _p("512"), "2027-03-14", "10:00", "2027-03-14T17:00Z",
         cites="301.051"),
    Case("phoenix-summer-no-dst", FEDERAL, "America/Phoenix", "AZ", _p("602"), "2027-07-14",
         "10:00", "2027-07-14T17:00Z"),
    Case("phoenix-spring-forward-day", FEDERAL, "America/Phoenix", "AZ", _p("602"),
         "2027-03-14", "10:00", "2027-03-14T17:00Z"),
    # -- area codes that span zones --------------------------------------------------
    Case("907-anchorage-or-adak-ten", WHERE, None, None, _p("907"), "2027-10-13", "10:00",
         "2027-10-13T19:00Z"),
    Case("907-adak-opens-at-eight", WHERE + "; " + FEDERAL, None, None, _p("907"), "2027-10-13",
         "07:30", "2027-10-13T17:00Z", cites="64.1200"),
    Case("907-anchorage-closed-at-adak-send-time", WHERE + "; " + FEDERAL, None, None, _p("907"),
         "2027-10-13", "20:30", SKIP, cites="64.1200"),
    Case("208-boise-or-los-angeles-eight", WHERE, None, None, _p("208"), "2027-10-13", "08:00",
         "2027-10-13T15:00Z"),
    Case("208-los-angeles-waits", WHERE + "; " + FEDERAL, None, None, _p("208"), "2027-10-13",
         "06:00", "2027-10-13T15:00Z", cites="64.1200"),
    Case("208-boise-closed-late", WHERE + "; " + FEDERAL, None, None, _p("208"), "2027-10-13",
         "20:30", SKIP, cites="64.1200"),
    Case("605-mountain-opens-later", WHERE + "; " + FEDERAL, None, None, _p("605"), "2027-10-13",
         "07:00", "2027-10-13T14:00Z", cites="64.1200"),
    Case("701-central-closed-late", WHERE + "; " + FEDERAL, None, None, _p("701"), "2027-10-13",
         "20:30", SKIP, cites="64.1200"),
    Case("684-american-samoa-ten", WHERE + "; 684 is Pacific/Pago_Pago", None, None,
         "+16846331234", "2027-10-13", "10:00", "2027-10-13T21:00Z"),
    Case("684-american-samoa-waits-for-eight", FEDERAL, None, None, "+16846331234",
         "2027-10-13", "07:00", "2027-10-13T19:00Z", cites="64.1200"),
    # -- address and phone disagree --------------------------------------------------
    Case("ca-with-212-five-am", WHERE, None, "CA", _p("212"), "2027-10-13", "05:00",
         "2027-10-13T15:00Z", cites="64.1200"),
    Case("ca-with-212-noon", WHERE, None, "CA", _p("212"), "2027-10-13", "12:00",
         "2027-10-13T19:00Z"),
    Case("ca-with-212-evening-skipped", WHERE, None, "CA", _p("212"), "2027-10-13", "19:30",
         SKIP, cites="64.1200"),
    Case("hi-with-212-five-am", WHERE, None, "HI", _p("212"), "2027-10-13", "05:00",
         "2027-10-13T18:00Z", cites="64.1200"),
    Case("hi-with-212-afternoon-skipped", WHERE, None, "HI", _p("212"), "2027-10-13", "16:00",
         SKIP, cites="64.1200"),
    Case("ny-with-305-gets-florida-window", "Fla. Stat. 501.059 presumption; 501.616(6)(a)",
         None, "NY", _p("305"), "2027-10-13", "20:15", SKIP, cites="501.616(6)(a)", cap=3),
    Case("ny-with-305-gets-florida-cap", "Fla. Stat. 501.616(6)(b); 501.059", None, "NY",
         _p("305"), "2027-10-13", "10:00", "2027-10-13T14:00Z", cap=3),
    Case("ny-with-405-oklahoma-evening", "15 O.S. 775C.1 et seq. (presumption)", None, "NY",
         _p("405"), "2027-10-13", "19:30", "2027-10-14T00:30Z", cap=3),
    Case("ny-with-405-oklahoma-closes-at-eight", "15 O.S. 775C.1 et seq. (presumption)", None,
         "NY", _p("405"), "2027-10-13", "20:10", SKIP, cites="775C.1", cap=3),
    Case("chicago-zone-with-212", WHERE, "America/Chicago", None, _p("212"), "2027-10-13",
         "07:30", "2027-10-13T13:00Z", cites="64.1200"),
    Case("tx-with-915-el-paso-mountain", "Tex. Bus. & Com. Code 301.051; 915 is America/Denver",
         None, "TX", _p("915"), "2027-10-13", "10:00", "2027-10-13T16:00Z"),
    Case("tx-address-only-both-zones", "Tex. Bus. & Com. Code 301.051; " + WHERE, None, "TX",
         None, "2027-10-13", "08:30", "2027-10-13T15:00Z", cites="301.051"),
    Case("fl-address-only-panhandle-central", "Fla. Stat. 501.616(6)(a); " + WHERE, None, "FL",
         None, "2027-10-13", "19:30", SKIP, cites="501.616(6)(a)", cap=3),
    Case("la-address-with-212-on-sunday", "LPSC General Order R-29617; " + WHERE, None, "LA",
         _p("212"), "2027-10-17", "12:00", SKIP, cites="R-29617"),
    Case("ny-address-with-601-on-sunday", "Miss. Code 77-3-723; " + WHERE, None, "NY", _p("601"),
         "2027-10-17", "12:00", SKIP, cites="77-3-723"),
    # -- no evidence at all ----------------------------------------------------------
    Case("unknown-ten-goes-at-honolulus-ten", NO_EVIDENCE, None, None, None, "2027-10-13",
         "10:00", "2027-10-13T20:00Z"),
    Case("unknown-seven-waits-for-honolulu", NO_EVIDENCE, None, None, None, "2027-10-13",
         "07:00", "2027-10-13T18:00Z", cites="64.1200"),
    Case("unknown-five-pm-no-lawful-hour", NO_EVIDENCE, None, None, None, "2027-10-13", "17:00",
         SKIP, cites="64.1200"),
    Case("unknown-email-same-hours", NO_EVIDENCE, None, None, None, "2027-10-13", "10:00",
         "2027-10-13T20:00Z", channel="email"),
    Case("unknown-clinic-serves-new-york-only", NO_EVIDENCE + "; MERIDIAN_CLINIC_SERVICE_ZONES",
         None, None, None, "2027-10-13", "10:00", "2027-10-13T14:00Z",
         service_zones=("America/New_York",)),
    Case("unknown-winter-afternoon", NO_EVIDENCE, None, None, None, "2027-12-01", "15:00",
         "2027-12-02T01:00Z"),
    Case("toll-free-is-no-evidence", NO_EVIDENCE + "; 800 names no place", None, None,
         "+18005550142", "2027-10-13", "10:00", "2027-10-13T20:00Z"),
    # -- every restricted state's edges ----------------------------------------------
    Case("fl-closes-at-eight", "Fla. Stat. 501.616(6)(a)", "America/New_York", "FL", _p("305"),
         "2027-10-13", "20:30", SKIP, cites="501.616(6)(a)", cap=3),
    Case("fl-closes-at-eight-held-overnight", "Fla. Stat. 501.616(6)(a); grace 12 h",
         "America/New_York", "FL", _p("305"), "2027-10-13", "20:30", "2027-10-14T12:00Z",
         grace_hours=12, cites="501.616(6)(a)", cap=3),
    Case("fl-sunday-is-a-day-like-any", "Fla. Stat. 501.616(6)(a)", "America/New_York", "FL",
         _p("305"), "2027-10-17", "10:00", "2027-10-17T14:00Z", cap=3),
    Case("fl-email-keeps-the-federal-window", FEDERAL + "; state windows govern texts",
         "America/New_York", "FL", _p("305"), "2027-10-13", "20:30", "2027-10-14T00:30Z",
         channel="email"),
    Case("ok-opens-at-eight", "15 O.S. 775C.1 et seq.", "America/Chicago", "OK", _p("405"),
         "2027-10-13", "07:59", "2027-10-13T13:00Z", cites="775C.1", cap=3),
    Case("md-closes-at-eight", "Stop the Spam Calls Act of 2023 (SB 90)", "America/New_York",
         "MD", _p("410"), "2027-10-13", "20:00", SKIP, cites="SB 90", cap=3),
    Case("nj-closes-at-eight", "N.J.S.A. 56:8-130 (vendor tables; the stricter)",
         "America/New_York", "NJ", _p("201"), "2027-10-13", "20:00", SKIP, cites="56:8-130"),
    Case("ct-opens-at-nine", "Connecticut statute (vendor tables)", "America/New_York", "CT",
         _p("203"), "2027-10-13", "08:30", "2027-10-13T13:00Z", cites="Connecticut"),
    Case("ct-closes-at-eight", "Connecticut statute (vendor tables)", "America/New_York", "CT",
         _p("203"), "2027-10-13", "20:00", SKIP, cites="Connecticut"),
    Case("tx-sunday-opens-at-noon", "Tex. Bus. & Com. Code 301.051", "America/Chicago", "TX",
         _p("512"), "2027-10-17", "11:00", "2027-10-17T17:00Z", cites="301.051"),
    Case("tx-weekday-opens-at-nine", "Tex. Bus. & Com. Code 301.051", "America/Chicago", "TX",
         _p("512"), "2027-10-18", "08:30", "2027-10-18T14:00Z", cites="301.051"),
    Case("wa-opens-at-eight", "RCW 19.158.040(2)", "America/Los_Angeles", "WA", _p("206"),
         "2027-10-13", "07:00", "2027-10-13T15:00Z", cites="19.158.040"),
    Case("wa-last-minute", "RCW 19.158.040(2)", "America/Los_Angeles", "WA", _p("206"),
         "2027-10-13", "19:59", "2027-10-14T02:59Z"),
    Case("wa-closes-at-eight", "RCW 19.158.040(2)", "America/Los_Angeles", "WA", _p("206"),
         "2027-10-13", "20:15", SKIP, cites="19.158.040"),
    Case("ms-saturday-last-minute", "Miss. Code 77-3-723", "America/Chicago", "MS", _p("601"),
         "2027-10-16", "19:59", "2027-10-17T00:59Z"),
    Case("ms-sunday-skipped", "Miss. Code 77-3-723", "America/Chicago", "MS", _p("601"),
         "2027-10-17", "10:00", SKIP, cites="77-3-723"),
    Case("ms-saturday-night-held-past-sunday", "Miss. Code 77-3-723; grace 72 h",
         "America/Chicago", "MS", _p("601"), "2027-10-16", "20:00", "2027-10-18T13:00Z",
         grace_hours=72, cites="77-3-723"),
    Case("la-sunday-skipped", "LPSC General Order R-29617", "America/Chicago", "LA", _p("504"),
         "2027-10-17", "10:00", SKIP, cites="R-29617"),
    Case("la-mardi-gras-skipped", "LPSC General Order R-29617 (state legal holiday)",
         "America/Chicago", "LA", _p("504"), "2027-02-09", "10:00", SKIP, cites="R-29617"),
    Case("la-monday-opens-at-eight", "LPSC General Order R-29617", "America/Chicago", "LA",
         _p("504"), "2027-10-18", "07:00", "2027-10-18T13:00Z", cites="R-29617"),
    Case("ri-sunday-skipped", "R.I. Gen. Laws 5-61-2", "America/New_York", "RI", _p("401"),
         "2027-10-17", "12:00", SKIP, cites="5-61-2"),
    Case("ri-victory-day-skipped", "R.I. Gen. Laws 5-61-2 (state holiday)", "America/New_York",
         "RI", _p("401"), "2027-08-09", "12:00", SKIP, cites="5-61-2"),
    Case("ri-columbus-day-skipped", "R.I. Gen. Laws 5-61-2 (federal holiday)", "America/New_York",
         "RI", _p("401"), "2027-10-11", "12:00", SKIP, cites="5-61-2"),
    Case("ri-saturday-opens-at-ten", "R.I. Gen. Laws 5-61-2", "America/New_York", "RI",
         _p("401"), "2027-10-16", "09:00", "2027-10-16T14:00Z", cites="5-61-2"),
    Case("ri-friday-closes-at-six-then-saturday", "R.I. Gen. Laws 5-61-2; grace 72 h",
         "America/New_York", "RI", _p("401"), "2027-08-06", "18:00", "2027-08-07T14:00Z",
         grace_hours=72, cites="5-61-2"),
    Case("ri-area-code-saturday-five-then-monday", "R.I. Gen. Laws 5-61-2; grace 72 h", None,
         None, _p("401"), "2027-10-16", "17:00", "2027-10-18T13:00Z", grace_hours=72,
         cites="5-61-2"),
    Case("ri-address-with-212-saturday", "R.I. Gen. Laws 5-61-2; " + WHERE, None, "RI",
         _p("212"), "2027-10-16", "09:00", "2027-10-16T14:00Z", cites="5-61-2"),
    Case("ri-email-on-sunday-goes", FEDERAL + "; state rules govern texts", "America/New_York",
         "RI", _p("401"), "2027-10-17", "10:00", "2027-10-17T14:00Z", channel="email"),
    Case("al-christmas-observed-skipped", "Alabama (vendor restricted dates): federal holiday",
         "America/Chicago", "AL", _p("205"), "2027-12-24", "10:00", SKIP, cites="Alabama"),
    Case("al-confederate-memorial-day-skipped", "Alabama (vendor restricted dates): state holiday",
         "America/Chicago", "AL", _p("205"), "2027-04-26", "10:00", SKIP, cites="Alabama"),
    Case("al-weekday-federal-window", "Alabama; " + FEDERAL, "America/Chicago", "AL", _p("205"),
         "2027-10-13", "20:30", "2027-10-14T01:30Z"),
    Case("ut-pioneer-day-skipped", "Utah (vendor restricted dates): state holiday",
         "America/Denver", "UT", _p("801"), "2027-07-24", "10:00", SKIP, cites="Utah"),
    Case("ut-labor-day-skipped", "Utah (vendor restricted dates): federal holiday",
         "America/Denver", "UT", _p("801"), "2027-09-06", "10:00", SKIP, cites="Utah"),
    Case("ut-weekday", "Utah; " + FEDERAL, "America/Denver", "UT", _p("801"), "2027-10-13",
         "10:00", "2027-10-13T16:00Z"),
)  # fmt: skip
