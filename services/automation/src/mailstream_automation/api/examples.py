"""OpenAPI examples of the rule API (shown by the gateway's merged document)."""

OUT_OF_HOURS_AUTO_REPLY = {
    "name": "Out-of-hours auto-reply",
    "enabled": True,
    "match": "all",
    "conditions": [
        {
            "field": "received_at",
            "operator": "outside_hours",
            "value": {
                "timezone": "Asia/Tokyo",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "from": "09:00",
                "to": "18:00",
            },
        },
        {"field": "is_first_message", "operator": "is", "value": True},
    ],
    "actions": [
        {"type": "auto_reply", "canned_response_id": "8f14e45fceea467a9575b7b2a1d7c1b0", "apply_template": True},
        {"type": "add_tags", "tags": ["after-hours"]},
    ],
    "stop_processing": False,
}

URGENT_REFUNDS = {
    "name": "Refunds are urgent and go to billing",
    "match": "any",
    "conditions": [
        {"field": "subject", "operator": "contains", "value": ["refund", "chargeback"]},
        {"field": "body", "operator": "matches", "value": r"order\s+#?\d{4,}"},
        {"field": "header:X-Priority", "operator": "starts_with", "value": "1"},
    ],
    "actions": [
        {"type": "set_priority", "priority": "urgent"},
        {"type": "assign", "assignee": "billing-team"},
        {"type": "add_tags", "tags": ["refund"]},
    ],
    "stop_processing": True,
    "position": 0,
}

SUSPICIOUS_SENDER = {
    "name": "Flag mail that fails DMARC",
    "topic_id": "4b227777d4dd4dc59bd1e5b2d3b0d7a1",
    "conditions": [{"field": "authentication.dmarc", "operator": "equals", "value": "fail"}],
    "actions": [{"type": "add_tags", "tags": ["suspicious"]}, {"type": "set_status", "status": "pending"}],
}

CREATE_EXAMPLES = {
    "auto_reply_out_of_hours": {"summary": "Auto-reply outside business hours", "value": OUT_OF_HOURS_AUTO_REPLY},
    "urgent_refunds": {"summary": "Prioritise and assign refund requests", "value": URGENT_REFUNDS},
    "dmarc_fail": {"summary": "Tag mail that fails DMARC", "value": SUSPICIOUS_SENDER},
}

UPDATE_EXAMPLES = {
    "disable": {"summary": "Switch a rule off", "value": {"enabled": False}},
    "move_first": {"summary": "Evaluate this rule first", "value": {"position": 0}},
    "replace_conditions": {
        "summary": "Replace the conditions",
        "value": {"match": "all", "conditions": [{"field": "from_domain", "operator": "equals", "value": "acme.com"}]},
    },
}

SAMPLE_MESSAGE = {
    "from": "kana@example.net",
    "from_name": "Kana Customer",
    "to": ["support@acme.com"],
    "subject": "Refund for order 12345",
    "body": "Hello, I would like a refund for order #12345.",
    "headers": [{"name": "X-Priority", "value": "1 (Highest)"}],
    "has_attachment": False,
    "is_first_message": True,
    "authentication": {"spf": "pass", "dkim": "pass", "dmarc": "pass"},
    "received_at": "2026-03-02T23:30:00Z",
}

TEST_EXAMPLES = {
    "draft_rule": {
        "summary": "Dry-run a rule that is not saved yet",
        "value": {"rule": URGENT_REFUNDS, "message": SAMPLE_MESSAGE},
    },
    "saved_rule": {
        "summary": "Dry-run a saved rule",
        "value": {"rule_id": "c4ca4238a0b923820dcc509a6f75849b", "message": SAMPLE_MESSAGE},
    },
}
