/* The copy editor: SMS counter, field checks as staff type, variable buttons.
 * MeridianSms.count mirrors campaigns/content/sms.py:count_segments (the server is
 * the truth; tests/web/test_copy_editor.py holds the two to the same answers). */
"use strict";

const MeridianSms = (() => {
  const table =
    "@£$¥èéùìòÇ\nØø\rÅå" + "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" + " !\"#¤%&'()*+,-./" + "0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNO" + "PQRSTUVWXYZÄÖÑÜ§" + "¿abcdefghijklmno" + "pqrstuvwxyzäöñüà";
  const basic = new Set(Array.from(table).filter((ch) => ch !== "\x1b"));
  const extension = new Set(Array.from("\f^{}\\[~]|€"));

  function pack(widths, single, multi) {
    const total = widths.reduce((a, b) => a + b, 0);
    if (total === 0) return 0;
    if (total <= single) return 1;
    let segments = 1, filled = 0;
    for (const width of widths) {
      if (filled + width > multi) { segments += 1; filled = 0; }
      filled += width;
    }
    return segments;
  }

  function count(text) {
    const chars = Array.from(text);
    const outsiders = [];
    for (const ch of chars) {
      if (!basic.has(ch) && !extension.has(ch) && !outsiders.includes(ch)) outsiders.push(ch);
    }
    if (outsiders.length === 0) {
      const septets = chars.map((ch) => (extension.has(ch) ? 2 : 1));
      return { encoding: "GSM-7", characters: septets.reduce((a, b) => a + b, 0),
               segments: pack(septets, 160, 153), ucs2_characters: [] };
    }
    const units = chars.map((ch) => (ch.codePointAt(0) > 0xffff ? 2 : 1));
    return { encoding: "UCS-2", characters: units.reduce((a, b) => a + b, 0),
             segments: pack(units, 70, 67), ucs2_characters: outsiders };
  }

  // Each link but the clinic's own counts at the length of the short link it is sent
  // as (campaigns/content/links.py:shortened_for_count).
  function shortened(text, publicUrl, shortLength) {
    return text.replace(/https?:\/\/[^\s<>"']+/g, (match) => {
      const url = match.replace(/[.,;:!?)\]}]+$/, "");
      if (!url || url === publicUrl || url.startsWith(publicUrl + "/")) return match;
      return "x".repeat(shortLength) + match.slice(url.length);
    });
  }

  return { count, shortened };
})();
window.MeridianSms = MeridianSms;

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("copy-form");
  if (!form) return;
  const sms = document.getElementById("sms");
  const counter = document.getElementById("sms-counter");
  const warning = document.getElementById("sms-warning");
  const shown = (ch) => (ch === "\n" ? "a line break" : ch.trim() === "" ? "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") : ch);

  function showCount() {
    const c = MeridianSms.count(MeridianSms.shortened(sms.value, counter.dataset.public, Number(counter.dataset.shortLink)));
    const per = c.encoding === "GSM-7" ? (c.segments > 1 ? 153 : 160) : (c.segments > 1 ? 67 : 70);
    counter.textContent = `As written: ${c.characters} characters · ${c.encoding} · ${c.segments} segment${c.segments === 1 ? "" : "s"} (up to ${per} characters each)`;
    counter.dataset.encoding = c.encoding;
    counter.dataset.segments = String(c.segments);
    if (c.ucs2_characters.length) {
      warning.hidden = false;
      warning.textContent = `Not in GSM-7: ${c.ucs2_characters.map(shown).join(" ")}. ` +
        "The whole message goes as UCS-2, 70 characters a segment instead of 160: " +
        "replace these characters to send fewer segments.";
    } else {
      warning.hidden = true;
      warning.textContent = "";
    }
  }

  const timers = {};
  async function check(field) {
    const part = field.dataset.part;
    const list = document.getElementById(`${part}-problems`);
    let answer;
    try {
      const reply = await fetch(form.dataset.check, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf },
        body: JSON.stringify({ part, text: field.value }),
        credentials: "same-origin",
      });
      answer = await reply.json();
    } catch (e) {
      return; // offline for a moment: the save still checks everything
    }
    list.replaceChildren();
    for (const p of answer.problems || []) {
      const li = document.createElement("li");
      li.textContent = (p.line ? `line ${p.line}: ` : "") + p.message;
      list.appendChild(li);
    }
    field.setAttribute("aria-invalid", (answer.problems || []).length ? "true" : "false");
    if (part === "sms" && answer.segments) {
      counter.dataset.serverEncoding = answer.segments.encoding;
      counter.dataset.serverSegments = String(answer.segments.segments);
      const sample = document.getElementById("sms-sample");
      const s = answer.sample_segments;
      sample.textContent = s
        ? `For a sample patient: ${s.characters} characters · ${s.encoding} · ${s.segments} segment${s.segments === 1 ? "" : "s"}`
        : "";
      sample.dataset.segments = s ? String(s.segments) : "";
    }
    field.dataset.checked = String(Number(field.dataset.checked || 0) + 1);
  }

  let last = sms;
  for (const field of form.querySelectorAll("[data-part]")) {
    field.addEventListener("focus", () => { last = field; });
    field.addEventListener("input", () => {
      if (field === sms) showCount();
      clearTimeout(timers[field.id]);
      timers[field.id] = setTimeout(() => check(field), 400);
    });
    if (field.value) check(field);
  }
  showCount();

  for (const button of document.querySelectorAll("button.insert")) {
    button.addEventListener("click", () => {
      const field = last;
      const start = field.selectionStart ?? field.value.length;
      const end = field.selectionEnd ?? start;
      field.setRangeText(button.dataset.insert, start, end, "end");
      field.focus();
      field.dispatchEvent(new Event("input"));
    });
  }

  const byHand = document.getElementById("text-by-hand");
  const text = document.getElementById("text");
  byHand.addEventListener("change", () => { text.hidden = !byHand.checked; });
});
