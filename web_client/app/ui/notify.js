/**
 * Telling the user about new messages while the tab is in the background: the title badge
 * ("(3) Lien") and, with permission, a browser notification that names the sender only
 * (never the text: a notification can show on a shared screen).
 */

const BASE_TITLE = 'Lien';

export function updateBadge(unread) {
  document.title = unread > 0 ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
}

export function notificationsSupported() {
  return typeof Notification !== 'undefined';
}

export function notificationsEnabled() {
  return notificationsSupported() && Notification.permission === 'granted';
}

/** Ask for permission (call from a click: browsers ignore requests made without a gesture). */
export async function enableNotifications() {
  if (!notificationsSupported()) return false;
  if (Notification.permission === 'granted') return true;
  return (await Notification.requestPermission()) === 'granted';
}

/** A notification for a new message when the page is not in view. */
export function notifyNewMessage(senderName, onOpen) {
  if (!notificationsEnabled() || document.visibilityState === 'visible') return;
  try {
    const notification = new Notification(BASE_TITLE, {
      body: `Nouveau message de ${senderName}`,
      icon: '/assets/icons/lien.svg',
      tag: `lien-${senderName}`,
    });
    notification.onclick = () => {
      window.focus();
      onOpen();
      notification.close();
    };
  } catch {
    // some browsers only allow notifications from a service worker
  }
}
