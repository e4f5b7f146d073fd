"""Herald's web cabinet: server-rendered pages for the people who send notifications.

Jinja2 templates (autoescaped) in ``templates/``, htmx for partial updates, Server-Sent
Events for live statuses, every asset in ``static/`` (served at ``/static/``; ``vendor/``
holds htmx, see its ``VENDORED.md``). Pages call the same services as the API: no business
rule lives here.

Modules:

- ``mount.py``: ``install(app)``, called once by ``api/app.py``: the routers, ``/static/``,
  and the handlers that turn "sign in first" into a redirect and "not allowed" into a 403.
- ``readers.py``: who reads a page (``Reader``: language, zone, CSRF token, user) and the
  dependencies ``AnyReader``, ``SignedIn``, ``allowed(action)``, ``posted(action)``.
- ``security.py``: cookies (``herald_session``: HttpOnly, SameSite=Lax, Secure over https),
  CSRF tokens, the headers of every page (CSP: Herald's own files only, no inline script).
- ``rendering.py``: ``page()`` and ``render()``, status and channel names, the navigation
  (``NAV``).
- ``i18n.py``: catalogs, the reader's language, dates ("7 декабря 2026, 14:05") and numbers.
- ``signing_in.py`` (``/``, ``/sign-in``, links, ``/sign-out``, ``/language``),
  ``messages.py`` (``/messages``, live statuses, one message, Cancel), ``timeline.py``,
  ``account.py`` (``/account``), ``send.py`` (``/send``: one message, live preview),
  ``template_pages.py`` and ``template_fields.py`` (``/templates``: list, editor, versions,
  sample files), ``tasks.py`` (``/tasks``: the seed's send-task flow and its progress).

How to add a page (Send, Templates, Send tasks, …):

1. A module here with ``router = APIRouter(include_in_schema=False)`` and its routes. A GET
   takes ``who: Annotated[Reader, Depends(allowed("send"))]`` (the action its role needs, see
   ``services.users.can``); a POST takes ``Depends(posted("send"))``, which also refuses a
   missing or wrong CSRF token with 403. Answer with
   ``rendering.page(request, who, "send/form.html", **context)``; an htmx fragment with
   ``HTMLResponse(rendering.render(request, who, "send/_preview.html", **context))``.
2. Add the router to ``PAGES`` in ``mount.py`` (one line). Its navigation entry is already in
   ``rendering.NAV`` (``/send``, ``/templates``, ``/tasks``): it appears once the path is
   routed, for roles that may use it.
3. Templates in ``templates/<page>/``: ``{% extends "base.html" %}``, fill
   ``{% block title %}`` and ``{% block main %}``. Every form carries
   ``<input type="hidden" name="{{ csrf_field }}" value="{{ reader.csrf }}">``; htmx requests
   carry the token already (``hx-headers`` on ``<body>``). No inline ``<script>``, ``style=``
   or ``hx-on``: the CSP refuses them; add behaviour to ``static/cabinet.js`` or a new file
   in ``static/``. Helpers in every template: ``_()``, ``ngettext()``, ``when(iso_or_datetime,
   short=False)``, ``number(n)``, ``status_label(s)``, ``channel_label(c)``, ``safe_url(u)``;
   macros in ``macros.html``. Strings made in Python: ``rendering.N_("…")`` then
   ``rendering.translate(who.language, text, **values)``.
4. Catalogs: every string in English in the code, translated in
   ``locale/{en,ru}/LC_MESSAGES/<page>.po`` (one file per page, merged at start-up; compiled
   in memory, no ``.mo`` to commit). From ``src/herald/cabinet``::

       pybabel extract -F babel.cfg -k N_ --no-location --sort-output -o /tmp/all.pot .

   then add the new ids to your page's ``.po`` (en: msgstr = msgid; ru: the translation).
   ``tests/e2e/test_cabinet_catalogs.py`` fails while any string lacks a translation.
5. Tests: ``tests/e2e/test_cabinet_*.py`` (``cabinet_user`` and ``browser_page`` helpers
   in ``tests/e2e/cabinet_pages.py``).
"""
