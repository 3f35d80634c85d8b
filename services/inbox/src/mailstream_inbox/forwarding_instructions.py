"""What an admin must do at their mail provider so that mail to their address reaches the forwarding address.

Pure data built from the two addresses; the streams API returns it as `setup`. The Outlook advice is the one that
matters most: an Outlook *forward* rule re-sends the mail as the mailbox owner, so the customer's address is lost
and nobody can answer them; a *redirect* rule keeps the original sender.
"""

from typing import Any

OUTLOOK_REASON = (
    "Use 'Redirect to', not 'Forward to'. A forwarded mail is sent again by your mailbox, so your address becomes "
    "its sender and the customer's address is lost: agents could not reply to the customer. A redirected mail keeps "
    "the customer as the sender."
)


def provider_instructions(address: str, forwarding_address: str) -> dict[str, Any]:
    return {
        "forwarding_address": forwarding_address,
        "summary": (
            f"Forward (Gmail) or redirect (Outlook) all mail that reaches {address} to {forwarding_address}. "
            "Then use 'verify forwarding' to check the rule end to end."
        ),
        "providers": [
            {
                "provider": "gmail",
                "method": "forward",
                "title": "Gmail / Google Workspace: a forwarding address",
                "steps": [
                    "Open Gmail settings -> 'See all settings' -> 'Forwarding and POP/IMAP'.",
                    f"Click 'Add a forwarding address' and enter {forwarding_address}.",
                    "Google sends a confirmation mail to that address; Mailstream shows its code and link on this "
                    "stream as 'provider_confirmation'. Open the link (or enter the code) to confirm.",
                    f"Choose 'Forward a copy of incoming mail to {forwarding_address}' and 'keep Gmail's copy in "
                    "the Inbox', then save.",
                ],
            },
            {
                "provider": "outlook",
                "method": "redirect",
                "title": "Outlook / Microsoft 365: a redirect rule (not forward)",
                "reason": OUTLOOK_REASON,
                "steps": [
                    "Open Outlook settings -> 'Mail' -> 'Rules' -> 'Add new rule'.",
                    "Condition: 'Apply to all messages'.",
                    f"Action: 'Redirect to' {forwarding_address} (NOT 'Forward to' or 'Forward as attachment').",
                    "Save the rule. In Microsoft 365, an admin may have to allow automatic external forwarding in "
                    "the outbound spam policy.",
                ],
            },
            {
                "provider": "other",
                "method": "redirect",
                "title": "Other providers and your own mail server",
                "steps": [
                    f"Create a rule or alias that delivers every mail for {address} also to {forwarding_address}, "
                    "keeping the original sender (often called redirect, bounce, alias or 'forward without "
                    "rewriting'). On Postfix: a virtual alias with both destinations; on Exchange: a transport "
                    "rule 'Redirect the message to' or a mail contact with forwarding.",
                    "If your provider can only forward (resend as yourself), Mailstream still recovers the customer "
                    "from the forwarded content when it can, but redirect is more reliable.",
                ],
            },
        ],
    }
