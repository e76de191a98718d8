"""HTML for the emulator's pages (sign-in, consent, Purview, admin): small and plain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from starlette.responses import HTMLResponse

STYLE = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0;color:#1b1b1b}
.box{background:#fff;max-width:460px;margin:60px auto;padding:36px 44px;
box-shadow:0 2px 6px rgba(0,0,0,.2)}
.wide{max-width:960px}
h1{font-size:24px;font-weight:600;margin:0 0 16px}
.brand{color:#737373;font-size:15px;margin-bottom:12px}
input[type=text],input[type=password],input[type=email],input[type=number],select,textarea{
width:100%;padding:6px 0;border:none;border-bottom:1px solid #666;margin:8px 0 16px;
font-size:15px;box-sizing:border-box}
textarea{border:1px solid #666;padding:6px}
button,.button{background:#0067b8;color:#fff;border:none;padding:8px 24px;font-size:15px;
cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#ccc;color:#1b1b1b}
.error{color:#e81123;margin:8px 0}
table{border-collapse:collapse;width:100%;margin:12px 0}
td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left;font-size:14px;vertical-align:top}
ul.perms li{margin:6px 0}
code{background:#eee;padding:1px 4px}
td input[type=text],td input[type=number]{margin:0;padding:2px 0}
nav a{margin-right:14px}
"""


def page(title: str, body: str, *, wide: bool = False, status: int = 200) -> HTMLResponse:
    cls = "box wide" if wide else "box"
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><style>{STYLE}</style></head><body><div class='{cls}'>"
        f"<div class='brand'>Microsoft (emulated)</div>{body}</div></body></html>"
    )
    return HTMLResponse(html, status_code=status)


def hidden(params: Mapping[str, str]) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in params.items()
    )


def error_page(code: str, message: str) -> HTMLResponse:
    return page(
        "Sign in to your account",
        f"<h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p class='error'>AADSTS{escape(code)}: {escape(message)}</p>",
        status=400,
    )


def sign_in_form(
    action: str, params: Mapping[str, str], *, hint: str = "", error: str = ""
) -> HTMLResponse:
    problem = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    return page(
        "Sign in to your account",
        f"<h1>Sign in</h1>{problem}<form method='post' action='{escape(action)}'>"
        f"{hidden(params)}<label>Email, phone, or Skype"
        f"<input type='email' name='login' value='{escape(hint)}' autocomplete='username' "
        f"required></label><label>Password<input type='password' name='passwd' "
        f"autocomplete='current-password' required></label>"
        f"<button type='submit' name='step' value='signin'>Sign in</button></form>",
    )


def table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Rows are HTML already (escape what you put in)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
