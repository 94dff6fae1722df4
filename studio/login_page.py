"""The one page served before login (studio.login_guard): a plain HTML form, no script, no Gradio
bundle, no API schema, no configuration and no version. It posts to ``login`` (relative, so the app
works under a path prefix); the guard answers a browser with a redirect to the app or this page
again with the refusal."""
from __future__ import annotations

import html

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center;color:#1f2430}
main{background:#fff;border:1px solid #d8dbe2;border-radius:10px;padding:28px 32px;width:min(360px,90vw)}
h1{font-size:20px;margin:0 0 6px}p{font-size:14px;color:#4a5160;margin:0 0 16px}
label{display:block;font-size:13px;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px 10px;border:1px solid #b9bfcc;border-radius:6px;font-size:15px}
button{margin-top:18px;width:100%;padding:9px;border:0;border-radius:6px;background:#2f5fd0;color:#fff;font-size:15px}
.care-login-error{background:#fdecec;border:1px solid #e4a4a4;color:#8a1f1f;border-radius:6px;padding:8px 10px;
font-size:14px;margin:0 0 12px}
"""


def login_page(message: str = "", error: str = "", title: str = "CARE Review Studio") -> str:
    """The login page's HTML; ``error`` (escaped) says why the last try or the session ended."""
    err = f'<p class="care-login-error" role="alert" id="care-login-error">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{html.escape(title)}: log in</title><style>{CSS}</style></head>
<body><main><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{err}
<form method="post" action="login" autocomplete="on">
<label for="care-username">User name</label>
<input id="care-username" name="username" type="text" autocomplete="username" required autofocus maxlength="64">
<label for="care-password">Password</label>
<input id="care-password" name="password" type="password" autocomplete="current-password" required maxlength="200">
<button type="submit" id="care-login">Log in</button>
</form></main></body></html>"""
