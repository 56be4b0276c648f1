/*
 * The anysend sandbox inbox: one inbox per person, every channel they received on.
 *
 * Plain JavaScript, no build step. Rules this file keeps:
 * - Message data only ever reaches the page through textContent or attributes, never innerHTML.
 *   An email's HTML goes into an <iframe sandbox srcdoc> (no scripts, no same-origin).
 * - State comes from the JSON API under /_sandbox/api/ and then live from Server-Sent Events;
 *   after a reconnect the page reloads its state, so nothing missed while offline is lost.
 */
(function () {
  "use strict";

  var API = "/_sandbox/api/";

  // The channels in the order the page shows them; chat apps each get their own thread.
  var CHANNEL_ORDER = ["email", "sms", "push", "whatsapp", "telegram", "chat"];
  var PROVIDER_LABELS = {
    whatsapp: "WhatsApp", telegram: "Telegram", twilio: "Twilio", sendgrid: "SendGrid",
    mailgun: "Mailgun", fcm: "Firebase Cloud Messaging", webpush: "Web Push", smtp: "SMTP",
    messenger: "Messenger", viber: "Viber", slack: "Slack", teams: "Teams", discord: "Discord",
    vonage: "Vonage", plivo: "Plivo", smsapi: "SMSAPI", apns: "APNs", ses: "Amazon SES",
    postmark: "Postmark"
  };
  var STATUS_LABELS = {
    accepted: "Sent", queued: "Queued", sent: "Sent", delivered: "Delivered", read: "Read",
    opened: "Opened", clicked: "Clicked", failed: "Failed", undeliverable: "Undeliverable",
    received: "Received"
  };
  // WhatsApp-style ticks for chat bubbles; the word is always there too (for screen readers).
  var STATUS_TICKS = { accepted: "✓", sent: "✓", delivered: "✓✓", read: "✓✓", opened: "✓✓" };

  var state = {
    people: [],          // from GET people
    selected: null,      // the selected person's key
    messages: new Map(), // id -> message, the selected person's
    loadToken: 0         // guards against a slow response for a person no longer selected
  };

  // ---------------------------------------------------------------- small DOM helpers

  /** Make an element; `text` always goes in as text, never as markup. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") node.textContent = String(value);
        else if (name === "className") node.className = value;
        else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function byId(id) { return document.getElementById(id); }

  function announce(text) {
    var region = byId("announcer");
    region.textContent = "";
    // A fresh text node so that repeated announcements are read again.
    window.setTimeout(function () { region.textContent = text; }, 30);
  }

  function label(map, key) {
    if (!key) return "";
    return map[key] || key.charAt(0).toUpperCase() + key.slice(1);
  }

  function initials(name) {
    var words = String(name || "?").replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/);
    var letters = words.filter(Boolean).slice(0, 2).map(function (w) { return w.charAt(0); });
    var result = letters.join("");
    // Numbers and tokens make poor initials: a phone number shows "#".
    return /\p{L}/u.test(result) ? result.toUpperCase() : "#";
  }

  // A stable colour per person, from their key.
  function hue(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) % 360;
    return h;
  }

  function paintAvatar(node, key, name) {
    node.textContent = initials(name);
    node.style.setProperty("--avatar-hue", String(hue(key || name || "")));
  }

  function parseTime(iso) {
    var date = iso ? new Date(iso) : null;
    return date && !isNaN(date.getTime()) ? date : null;
  }

  /** Milliseconds since the epoch, for ordering (0 when the time is missing). */
  function timeValue(iso) {
    var date = parseTime(iso);
    return date ? date.getTime() : 0;
  }

  function timeElement(iso, className) {
    var date = parseTime(iso);
    if (!date) return el("span", { className: className });
    var sameDay = date.toDateString() === new Date().toDateString();
    var shown = sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    return el("time", { className: className, datetime: iso, title: date.toLocaleString(), text: shown });
  }

  // ---------------------------------------------------------------- API

  function getJSON(path) {
    return fetch(API + path, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error(path + ": HTTP " + response.status);
        return response.json();
      });
  }

  function postJSON(path, body) {
    return fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var detail = data && (data.error || data.message || data.detail);
          throw new Error(typeof detail === "string" ? detail : "HTTP " + response.status);
        }
        return data;
      });
    });
  }

  // ---------------------------------------------------------------- people

  function personOf(key) {
    for (var i = 0; i < state.people.length; i++) {
      if (state.people[i].key === key) return state.people[i];
    }
    return null;
  }

  /** Does a message belong in the selected person's inbox? */
  function belongsToSelected(message) {
    if (!state.selected) return false;
    if (message.person !== null && message.person !== undefined) {
      return message.person === state.selected;
    }
    var person = personOf(state.selected);
    var addresses = person ? person.addresses || [] : [state.selected];
    return addresses.indexOf(message.to) !== -1 || addresses.indexOf(message.from) !== -1;
  }

  /** The sidebar button of one person, built once and then updated in place (focus survives). */
  function personButton(person) {
    var list = byId("people-list");
    var button = list.querySelector('button[data-person-key="' + CSS.escape(person.key) + '"]');
    if (!button) {
      button = el("button", {
        type: "button", className: "person-button", "data-testid": "person", "data-person-key": person.key
      }, [
        el("span", { className: "avatar", "aria-hidden": "true" }),
        el("span", { className: "person-button__text" }, [
          el("span", { className: "person-button__name", "data-testid": "person-button-name" }),
          el("span", { className: "person-button__addresses" })
        ]),
        el("span", { className: "badge", "data-testid": "unread" })
      ]);
      button.addEventListener("click", function () { selectPerson(person.key, true); });
    }
    var name = person.name || person.key;
    paintAvatar(button.querySelector(".avatar"), person.key, name);
    button.querySelector(".person-button__name").textContent = name;
    button.querySelector(".person-button__addresses").textContent = (person.addresses || []).join(", ");
    var unread = Number(person.unread) || 0;
    var badge = button.querySelector(".badge");
    badge.hidden = unread === 0;
    badge.textContent = String(unread);
    badge.setAttribute("aria-label", unread + " unread");
    if (person.key === state.selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    return button;
  }

  function renderPeople() {
    var list = byId("people-list");
    byId("people-empty").hidden = state.people.length > 0;
    var items = state.people.map(function (person) {
      var button = personButton(person);
      return button.parentNode || el("li", null, [button]);
    });
    // Reorder without detaching the focused button when it is already in place.
    items.forEach(function (item, index) {
      if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
    });
    while (list.children.length > items.length) list.removeChild(list.lastChild);
  }

  function loadPeople() {
    return getJSON("people").then(function (people) {
      state.people = Array.isArray(people) ? people : [];
      if (!state.selected || !personOf(state.selected)) {
        var wanted = keyFromHash();
        var first = state.people.length ? state.people[0].key : null;
        var key = wanted && personOf(wanted) ? wanted : first;
        if (key !== state.selected) {
          renderPeople();
          return selectPerson(key, false);
        }
      }
      renderPeople();
      renderPersonHeader();
    });
  }

  var peopleTimer = null;
  /** Refresh the people list (unread counts, new people) at most a few times a second. */
  function schedulePeopleRefresh() {
    if (peopleTimer !== null) return;
    peopleTimer = window.setTimeout(function () {
      peopleTimer = null;
      loadPeople().catch(function () { /* the next event or reconnect retries */ });
    }, 150);
  }

  function keyFromHash() {
    var match = /^#person=(.+)$/.exec(window.location.hash);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (e) { return null; }
  }

  function renderPersonHeader() {
    var person = state.selected ? personOf(state.selected) : null;
    var name = person ? person.name || person.key : (state.selected || "Inbox");
    byId("person-name").textContent = name;
    paintAvatar(byId("person-avatar"), state.selected || "", name);
    var list = byId("person-addresses");
    list.textContent = "";
    (person ? person.addresses || [] : []).forEach(function (address) {
      list.appendChild(el("li", { className: "chip", "data-testid": "person-address", text: address }));
    });
    document.title = (state.selected ? name + " · " : "") + "anysend sandbox inbox";
  }

  function selectPerson(key, fromClick) {
    state.selected = key;
    state.messages = new Map();
    var token = ++state.loadToken;
    if (key && fromClick) {
      history.replaceState(null, "", "#person=" + encodeURIComponent(key));
    }
    renderPeople();
    renderPersonHeader();
    clearChannels();
    if (!key) {
      byId("empty").hidden = false;
      return Promise.resolve();
    }
    byId("inbox").setAttribute("aria-busy", "true");
    return getJSON("messages?person=" + encodeURIComponent(key)).then(function (messages) {
      if (token !== state.loadToken) return;
      (messages || []).forEach(upsertMessage);
      byId("empty").hidden = state.messages.size > 0;
      if (fromClick) byId("inbox").focus({ preventScroll: true });
    }).finally(function () {
      if (token === state.loadToken) byId("inbox").removeAttribute("aria-busy");
    });
  }

  // ---------------------------------------------------------------- channels (threads)

  /** Which thread a message belongs to: one per channel, one per provider for generic chat. */
  function threadOf(message) {
    var channel = message.channel || "chat";
    if (CHANNEL_ORDER.indexOf(channel) === -1 || channel === "chat") {
      return { key: "chat-" + (message.provider || channel), kind: "chat", channel: channel };
    }
    var kind = channel === "whatsapp" || channel === "telegram" ? "chat" : channel;
    return { key: channel, kind: kind, channel: channel };
  }

  function orderOf(threadKey) {
    var index = CHANNEL_ORDER.indexOf(threadKey);
    return index === -1 ? CHANNEL_ORDER.length : index;
  }

  function clearChannels() {
    byId("channels").textContent = "";
  }

  function threadTitle(thread, message) {
    if (thread.channel === "email") return "Email";
    if (thread.channel === "sms") return "SMS";
    if (thread.channel === "push") return "Push notifications";
    if (thread.channel === "whatsapp") return "WhatsApp";
    if (thread.channel === "telegram") return "Telegram";
    return label(PROVIDER_LABELS, message.provider || thread.channel);
  }

  /** The panel for a thread, created in its place on first use. */
  function panelFor(message) {
    var thread = threadOf(message);
    var container = byId("channels");
    var existing = container.querySelector('section[data-thread="' + CSS.escape(thread.key) + '"]');
    if (existing) return existing;

    var headingId = "channel-" + thread.key.replace(/[^A-Za-z0-9_-]/g, "_") + "-heading";
    var title = threadTitle(thread, message);
    var panel = el("section", {
      className: "panel panel--" + thread.kind + " panel--" + thread.channel,
      "data-thread": thread.key,
      "data-kind": thread.kind,
      "data-testid": "channel-" + thread.key,
      "aria-labelledby": headingId
    });

    var header = el("header", { className: "panel__header" }, [
      el("span", { className: "panel__icon panel__icon--" + thread.channel, "aria-hidden": "true" }),
      el("h2", { id: headingId, className: "panel__title", text: title }),
      el("span", { className: "panel__meta", "data-role": "counterpart" })
    ]);
    panel.appendChild(header);

    var listAttrs = {
      className: "panel__list",
      "data-role": "list",
      "aria-label": title + " messages"
    };
    if (thread.kind === "chat" || thread.kind === "sms") {
      // A conversation: newest at the bottom, announced politely as it grows.
      listAttrs.role = "log";
      listAttrs["aria-live"] = "polite";
      listAttrs.className += " thread";
    } else {
      listAttrs.role = "list";
    }
    var list = el("div", listAttrs);
    if (thread.kind === "sms") {
      panel.appendChild(el("div", { className: "phone" }, [
        el("div", { className: "phone__notch", "aria-hidden": "true" }),
        list
      ]));
    } else {
      panel.appendChild(list);
    }
    if (thread.kind === "chat" || thread.kind === "sms") {
      panel.appendChild(replyForm(thread, title));
    }

    // Keep the panels in the fixed channel order.
    var order = orderOf(thread.key);
    var before = null;
    Array.prototype.forEach.call(container.children, function (other) {
      if (before === null && orderOf(other.getAttribute("data-thread")) > order) before = other;
    });
    container.insertBefore(panel, before);
    return panel;
  }

  function replyForm(thread, title) {
    var inputId = "reply-" + thread.key.replace(/[^A-Za-z0-9_-]/g, "_");
    var input = el("input", {
      id: inputId, className: "reply__input", type: "text", name: "text", autocomplete: "off",
      required: true, maxlength: "4096", placeholder: "Reply as the customer…",
      "data-testid": "reply-input"
    });
    var button = el("button", { type: "submit", className: "reply__send", "data-testid": "reply-send" }, [
      el("span", { "aria-hidden": "true", text: "➤" }),
      el("span", { className: "visually-hidden", text: "Send reply" })
    ]);
    var error = el("p", { className: "reply__error", "data-testid": "reply-error", role: "alert", hidden: true });
    var form = el("form", {
      className: "reply", "data-testid": "reply-form-" + thread.key, "data-thread": thread.key,
      "aria-label": "Reply on " + title
    }, [
      el("label", { "for": inputId, className: "visually-hidden", text: "Reply on " + title + " as the customer" }),
      input, button, error
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      sendReply(form, thread, input, button, error);
    });
    return form;
  }

  /** The last message of a thread: whom to reply as, and through which provider. */
  function lastOfThread(threadKey) {
    var last = null;
    state.messages.forEach(function (message) {
      if (threadOf(message).key === threadKey) last = message;
    });
    return last;
  }

  function sendReply(form, thread, input, button, error) {
    var text = input.value.trim();
    error.hidden = true;
    if (!text) { input.focus(); return; }
    var last = lastOfThread(thread.key);
    if (!last) return;
    // The customer replies from the address the message went to (or an earlier reply came from).
    var address = last.direction === "inbound" ? last.from : last.to;
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    postJSON("reply", { to: address, text: text, provider: last.provider })
      .then(function (data) {
        input.value = "";
        form.setAttribute("data-last-reply", "ok");
        if (data && data.id && data.channel) upsertMessage(data);
        else if (data && data.message && data.message.id) upsertMessage(data.message);
        announce("Reply sent on " + threadTitle(thread, last));
      })
      .catch(function (failure) {
        form.setAttribute("data-last-reply", "error");
        error.textContent = "The reply was not sent: " + failure.message;
        error.hidden = false;
      })
      .finally(function () {
        button.disabled = false;
        form.removeAttribute("aria-busy");
        input.focus();
      });
  }

  // ---------------------------------------------------------------- messages

  function statusText(message) {
    return label(STATUS_LABELS, message.status);
  }

  function historyText(message) {
    return (message.history || []).map(function (entry) {
      var date = parseTime(entry.at);
      return label(STATUS_LABELS, entry.status) + (date ? " " + date.toLocaleTimeString() : "");
    }).join(" → ");
  }

  function statusElement(message, withTicks) {
    var node = el("span", { className: "status", "data-testid": "message-status" });
    fillStatus(node, message, withTicks);
    return node;
  }

  function fillStatus(node, message, withTicks) {
    var status = message.status || "accepted";
    node.textContent = "";
    node.className = "status status--" + status;
    node.setAttribute("data-status", status);
    var history = historyText(message);
    if (history) node.setAttribute("title", history);
    var tick = withTicks ? STATUS_TICKS[status] : null;
    if (tick) node.appendChild(el("span", { className: "status__ticks", "aria-hidden": "true", text: tick }));
    node.appendChild(el("span", { className: "status__label", text: statusText(message) }));
  }

  /** Why a message failed, under it (hidden while there is no error). */
  function errorElement(message) {
    var node = el("p", { className: "message-error", "data-testid": "message-error" });
    fillError(node, message);
    return node;
  }

  function fillError(node, message) {
    node.hidden = !message.error;
    node.textContent = message.error ? String(message.error) : "";
  }

  function messageAttrs(message, className) {
    return {
      className: className,
      "data-testid": "message",
      "data-message-id": message.id,
      "data-channel": message.channel,
      "data-provider": message.provider,
      "data-direction": message.direction,
      "data-status": message.status
    };
  }

  function renderEmail(message) {
    var from = message.from || "";
    var attrs = messageAttrs(message, "email");
    attrs.role = "listitem";
    var card = el("article", attrs);
    var subjectId = "subject-" + String(message.id).replace(/[^A-Za-z0-9_-]/g, "_");
    card.setAttribute("aria-labelledby", subjectId);

    var avatar = el("span", { className: "avatar avatar--small", "aria-hidden": "true" });
    // "Shop <shop@example.com>" shows as "Shop"; a bare address by its local part.
    var display = /^\s*"?([^"<]*?)"?\s*<[^>]*>\s*$/.exec(from);
    var fromName = display && display[1] ? display[1] : from.replace(/@.*/, "");
    paintAvatar(avatar, from, fromName);
    card.appendChild(el("header", { className: "email__header" }, [
      avatar,
      el("div", { className: "email__headline" }, [
        el("h3", { id: subjectId, className: "email__subject", "data-testid": "email-subject",
                   text: message.subject || "(no subject)" }),
        el("p", { className: "email__addresses" }, [
          el("span", { className: "email__label", text: "From " }),
          el("span", { "data-testid": "email-from", text: from }),
          el("span", { className: "email__label", text: " to " }),
          el("span", { "data-testid": "email-to", text: message.to || "" })
        ])
      ]),
      el("div", { className: "email__side" }, [
        timeElement(message.created_at, "email__time"),
        statusElement(message, false)
      ])
    ]));
    card.appendChild(errorElement(message));

    if (message.html) {
      var frame = el("iframe", {
        className: "email__body",
        "data-testid": "email-body",
        title: "Email: " + (message.subject || "(no subject)"),
        // Empty sandbox: no scripts, no forms, no popups, a unique origin.
        sandbox: "",
        referrerpolicy: "no-referrer"
      });
      frame.srcdoc = message.html; // a property set, never parsed into this page
      card.appendChild(frame);
      if (message.text) {
        card.appendChild(el("details", { className: "email__plain" }, [
          el("summary", { text: "Plain-text part" }),
          el("pre", { className: "email__text", "data-testid": "email-text", text: message.text })
        ]));
      }
    } else {
      card.appendChild(el("pre", { className: "email__text email__text--only", "data-testid": "email-text",
                                   text: message.text || "" }));
    }
    return card;
  }

  function renderPush(message) {
    var attrs = messageAttrs(message, "notification");
    attrs.role = "listitem";
    return el("article", attrs, [
      el("div", { className: "notification__app" }, [
        el("span", { className: "notification__icon", "aria-hidden": "true" }),
        el("span", { className: "notification__provider", text: label(PROVIDER_LABELS, message.provider) }),
        el("span", { className: "notification__dot", "aria-hidden": "true", text: "·" }),
        timeElement(message.created_at, "notification__time"),
        statusElement(message, false)
      ]),
      el("h3", { className: "notification__title", "data-testid": "push-title", text: message.title || message.subject || "" }),
      el("p", { className: "notification__body", "data-testid": "push-body", text: message.text || "" }),
      el("p", { className: "notification__to", text: "to " + (message.to || "") }),
      errorElement(message)
    ]);
  }

  function renderBubble(message, kind) {
    var inbound = message.direction === "inbound";
    // The inbox is the customer's phone: what they received sits on the left, their replies on the right.
    var side = inbound ? "bubble--mine" : "bubble--theirs";
    var attrs = messageAttrs(message, "bubble " + side + " bubble--" + message.channel);
    var meta = [timeElement(message.created_at, "bubble__time")];
    if (kind === "sms" && message.segments) {
      var segments = Number(message.segments);
      meta.unshift(el("span", {
        className: "bubble__segments", "data-testid": "sms-segments",
        text: segments + (segments === 1 ? " segment" : " segments") +
              (message.encoding ? " · " + message.encoding : "")
      }));
    }
    if (!inbound) meta.push(statusElement(message, true));
    var children = [];
    if (message.title || message.subject) {
      children.push(el("p", { className: "bubble__title", text: message.title || message.subject }));
    }
    children.push(el("p", { className: "bubble__text", "data-testid": "message-text", text: message.text || "" }));
    children.push(el("p", { className: "bubble__meta" }, meta));
    children.push(errorElement(message));
    attrs["aria-label"] = inbound ? "Reply from the customer" : "From " + (message.from || "the sender");
    return el("article", attrs, children);
  }

  function renderMessage(message) {
    var thread = threadOf(message);
    if (thread.kind === "email") return renderEmail(message);
    if (thread.kind === "push") return renderPush(message);
    return renderBubble(message, thread.kind);
  }

  function findMessageNode(id) {
    return byId("channels").querySelector('[data-testid="message"][data-message-id="' + CSS.escape(String(id)) + '"]');
  }

  /** Add a message or update it in place (an iframe is never rebuilt just for a status). */
  function upsertMessage(message) {
    if (!message || message.id === undefined || message.id === null) return;
    var known = state.messages.get(message.id);
    // History only grows: an older snapshot never overwrites a newer event.
    if (known && (known.history || []).length > (message.history || []).length) return;
    state.messages.set(message.id, message);
    byId("empty").hidden = true;

    var node = findMessageNode(message.id);
    if (node) {
      node.setAttribute("data-status", message.status);
      var status = node.querySelector('[data-testid="message-status"]');
      if (status) fillStatus(status, message, node.classList.contains("bubble"));
      var error = node.querySelector('[data-testid="message-error"]');
      if (error) fillError(error, message);
      return;
    }
    var panel = panelFor(message);
    var list = panel.querySelector('[data-role="list"]');
    var fresh = renderMessage(message);
    var at = timeValue(message.created_at);
    fresh.setAttribute("data-at", String(at));
    var kind = panel.getAttribute("data-kind");
    // Emails and notifications newest first, like a mail client; a conversation reads top to
    // bottom. Placed by time, so an event that overtook the initial load still sits right.
    var newestFirst = kind === "email" || kind === "push";
    var before = null;
    Array.prototype.some.call(list.children, function (other) {
      var otherAt = Number(other.getAttribute("data-at"));
      if (newestFirst ? otherAt <= at : otherAt > at) { before = other; return true; }
      return false;
    });
    list.insertBefore(fresh, before);
    if (!newestFirst && before === null) list.scrollTop = list.scrollHeight;
    updateCounterpart(panel, message);
  }

  function updateCounterpart(panel, message) {
    var meta = panel.querySelector('[data-role="counterpart"]');
    var kind = panel.getAttribute("data-kind");
    var count = panel.querySelectorAll('[data-testid="message"]').length;
    if (kind === "sms" || kind === "chat") {
      var other = message.direction === "inbound" ? message.to : message.from;
      if (other) meta.textContent = other;
    } else {
      meta.textContent = count + (count === 1 ? " message" : " messages");
    }
  }

  // ---------------------------------------------------------------- live updates

  var source = null;
  var retryDelay = 1000;
  var everConnected = false;

  function setConnection(stateName, text) {
    var node = byId("connection");
    if (node.getAttribute("data-state") === stateName) return;
    node.setAttribute("data-state", stateName);
    node.querySelector(".connection__label").textContent = text;
  }

  function handleEvent(raw) {
    var event;
    try { event = JSON.parse(raw); } catch (e) { return; }
    if (!event || !event.message) return;
    var message = event.message;
    if (belongsToSelected(message)) {
      var isNew = !state.messages.has(message.id);
      upsertMessage(message);
      if (isNew && message.direction === "inbound") announce("New reply: " + (message.text || ""));
      else if (isNew) announce("New " + (message.channel || "") + " message");
    }
    schedulePeopleRefresh();
  }

  function connect() {
    if (source) source.close();
    setConnection(everConnected ? "reconnecting" : "connecting", everConnected ? "Reconnecting…" : "Connecting…");
    source = new EventSource(API + "events");
    source.onopen = function () {
      retryDelay = 1000;
      var resync = everConnected;
      everConnected = true;
      setConnection("live", "Live");
      if (resync) {
        // Events may have been missed while offline: reload what is shown.
        loadPeople().then(function () {
          if (state.selected) return selectPerson(state.selected, false);
        }).catch(function () {});
      }
    };
    source.onmessage = function (event) { handleEvent(event.data); };
    // Also accept named events, should a server label them.
    source.addEventListener("status", function (event) { handleEvent(event.data); });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (for example an HTTP error): retry ourselves, backing off.
        setConnection("offline", "Offline, retrying…");
        var delay = retryDelay;
        retryDelay = Math.min(retryDelay * 2, 15000);
        window.setTimeout(connect, delay);
      } else {
        setConnection("reconnecting", "Reconnecting…");
      }
    };
  }

  window.addEventListener("hashchange", function () {
    var key = keyFromHash();
    if (key && key !== state.selected && personOf(key)) selectPerson(key, false);
  });

  function start() {
    loadPeople().catch(function (failure) {
      byId("empty").hidden = false;
      setConnection("offline", "Cannot reach the sandbox");
      if (window.console) console.error(failure);
    }).finally(connect);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
