// JSON over HTTP for the pages: the CSRF token, the API's errors in words, and
// one fetch helper (``api``) for reads and writes with the session cookie.

// The CSRF token: Django's cookie, or the one the template rendered.
export function csrfToken(fallback = "") {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : fallback;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

function describeErrors(data) {
  if (!data) return "";
  if (typeof data === "string") return data;
  if (Array.isArray(data)) return data.map(describeErrors).join(" ");
  if (typeof data === "object") {
    if (data.detail) return describeErrors(data.detail);
    return Object.entries(data)
      .map(([field, value]) => `${field}: ${describeErrors(value)}`)
      .join(" ");
  }
  return String(data);
}

// JSON over fetch with the session cookie and the CSRF header.
export async function api(method, url, payload, { csrf = "", keepalive = false } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      keepalive,
      headers: {
        Accept: "application/json",
        ...(payload !== undefined ? { "Content-Type": "application/json" } : {}),
        ...(method !== "GET" ? { "X-CSRFToken": csrfToken(csrf) } : {}),
      },
      body: payload !== undefined ? JSON.stringify(payload) : undefined,
    });
  } catch {
    throw new ApiError(0, "The server could not be reached.");
  }
  let data = null;
  const text = await response.text().catch(() => "");
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = describeErrors(data) || `The server answered ${response.status} ${response.statusText}.`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

// A GET of JSON for the live pages' polls: the parsed answer, or an ApiError.
export function getJSON(url) {
  return api("GET", url);
}
