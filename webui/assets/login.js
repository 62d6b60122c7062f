// The login page: the token, typed or pasted, is sent once to POST
// /ui/login, which answers with the session cookie. The token is never
// stored by the page.
const form = document.getElementById('login');
const error = document.getElementById('error');
if (new URLSearchParams(location.search).has('expired')) {
  document.getElementById('expired').hidden = false;
}
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const token = form.token.value.trim();
  try {
    const resp = await fetch('/ui/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (resp.ok) {
      location.replace('/ui/');
      return;
    }
    const body = await resp.json().catch(() => ({}));
    error.textContent = body.error || `login failed (${resp.status})`;
  } catch (e) {
    error.textContent = `the node did not answer: ${e.message}`;
  }
  form.token.select();
});
document.getElementById('token').focus();
