// The server's HTTP/JSON API (docs/http.md): every call sends the access token, every error
// becomes an ApiError carrying the server's {code, message}; streams are Server-Sent Events read
// from fetch()'s body (EventSource can neither POST nor send headers).

const TOKEN_KEY = "latentforge.token";

export class ApiError extends Error {
  /** An answer the server refused: its HTTP status and its JSON error body. */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives for this page only */
  }
  memoryToken = token;
}

let memoryToken = getToken();

function headers(extra = {}) {
  const h = { ...extra };
  const token = memoryToken || getToken();
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function errorOf(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === "string") {
      return new ApiError(response.status, body.code || String(response.status), body.message);
    }
  } catch {
    /* not JSON: a proxy's page, say */
  }
  const what = text && text.length < 200 ? text.trim() : response.statusText;
  return new ApiError(response.status, `HTTP ${response.status}`, what || `HTTP ${response.status}`);
}

function networkError(err) {
  if (err && err.name === "AbortError") return err;
  return new ApiError(0, "UNAVAILABLE", `the server cannot be reached (${err && err.message ? err.message : err})`);
}

/** fetch() whose failures are ApiErrors: the network's, or the server's {code, message}. */
async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw networkError(err);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** One unary call: JSON body in (or raw bytes with `contentType`), JSON answer out. */
export async function call(method, path, body, { signal, contentType } = {}) {
  const init = { method, signal, headers: headers() };
  if (contentType) {
    init.headers["Content-Type"] = contentType;
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(path, init);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

/**
 * A Server-Sent Events stream, as an async generator of {event, data, id} (data parsed as JSON).
 * An `error` event is thrown as an ApiError; `end` finishes the generator. After the events of
 * each piece of the body it yields {event: "chunk"}, so a caller may paint what arrived so far.
 */
export async function* stream(method, path, body, { signal, lastEventId } = {}) {
  const init = { method, signal, headers: headers({ Accept: "text/event-stream" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (lastEventId) init.headers["Last-Event-ID"] = String(lastEventId);
  const response = await send(path, init);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw networkError(err);
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      const batch = [];
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data.length) batch.push(event);
          event = { event: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event.event = value;
        else if (field === "data") event.data.push(value);
        else if (field === "id") event.id = value;
      }
      for (const e of batch) {
        const data = JSON.parse(e.data.join("\n"));
        if (e.event === "error") throw new ApiError(0, data.code || "UNKNOWN", data.message || "the stream failed");
        if (e.event === "end") return;
        yield { event: e.event, data, id: e.id };
      }
      yield { event: "chunk" }; // the events read so far were handed out
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  throw new ApiError(0, "UNAVAILABLE", "the stream ended before the server finished it; try again");
}

export function base64ToBytes(b64) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** A canvas as PNG base64 (as the API takes it). */
export function canvasPng(canvas) {
  return canvas.toDataURL("image/png").split(",", 2)[1];
}

/** A random uint64 seed as a decimal string (64-bit integers are strings in proto3 JSON). */
export function randomSeed() {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return ((BigInt(words[0]) << 32n) | BigInt(words[1])).toString();
}
