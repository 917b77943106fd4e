/**
 * Errors the server reports (docs/protocol.md §8, `lien/protocol/errors.py`) and the
 * plain words the user sees for each code. Branch on `code` only; never show a stack trace.
 */
import { CryptoError } from '../src/crypto/errors.js';

/** A server error, an HTTP error or a connection failure, with a stable `code`. */
export class LienError extends Error {
  /** @param {string} code @param {string} [message] @param {object|null} [details] @param {number|null} [retryAfter] */
  constructor(code, message, details = null, retryAfter = null) {
    super(message || code);
    this.name = 'LienError';
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** Rebuild the error a server reported (unknown codes stay plain errors with that code, §8.1). */
export function errorFromWire(code, message, details = null, retryAfter = null) {
  return new LienError(code, message, details ?? null, retryAfter ?? null);
}

/** The network could not be reached at all. */
export const NETWORK_ERROR = 'network';

/** What the user reads, per code: the server's (§8.1), the crypto core's (§8.2) and this client's. */
export const USER_MESSAGES = Object.freeze({
  // accounts and sign-in
  'invalid-credentials': 'Identifiant ou mot de passe incorrect.',
  'invalid-password': 'Mot de passe incorrect : rien n’a été changé.',
  'username-taken': 'Cet identifiant est déjà pris : choisissez-en un autre.',
  'registration-closed': 'Ce serveur n’accepte de nouveaux comptes que sur invitation.',
  'invalid-invite': 'Ce code d’invitation est inconnu, déjà utilisé ou expiré.',
  'too-many-devices': 'Votre compte a atteint le nombre maximal d’appareils (10). Retirez-en un depuis un autre appareil.',
  'unknown-device': 'Cet appareil n’est plus enregistré sur votre compte. Reconnectez-vous.',
  'auth-failed': 'Votre session a expiré ou a été révoquée. Reconnectez-vous.',
  'not-authenticated': 'Vous n’êtes pas connecté. Reconnectez-vous.',
  'invalid-request': 'La demande n’est pas valide. Vérifiez les champs saisis.',
  'invalid-prekey-signature': 'Les clés de cet appareil sont invalides. Rechargez la page et réessayez.',
  // users and messages
  'unknown-user': 'Ce correspondant n’existe pas.',
  'not-found': 'Introuvable.',
  'devices-mismatch': 'Les appareils du correspondant ont changé pendant l’envoi. Réessayez.',
  'envelope-too-large': 'Ce message est trop long.',
  'too-many-recipients': 'Ce correspondant a trop d’appareils pour un seul message.',
  'too-many-in-flight': 'Trop de messages en attente ; patientez un instant.',
  'idempotency-conflict': 'Ce message a déjà été envoyé à un autre correspondant.',
  'unknown-message': 'Ce message est inconnu du serveur.',
  'not-a-recipient': 'Vous n’êtes pas destinataire de ce message.',
  'not-a-contact': 'La présence n’est partagée qu’entre contacts.',
  'rate-limited': 'Trop de demandes ; réessayez dans un instant.',
  'body-too-large': 'La demande est trop volumineuse.',
  'frame-too-large': 'Ce message est trop volumineux.',
  'too-many-prekeys': 'Trop de clés à usage unique enregistrées pour cet appareil.',
  // care-team groups
  'unknown-group': 'Ce groupe n’existe pas (ou plus).',
  'not-a-member': 'Vous ne faites pas (ou plus) partie de ce groupe.',
  'role-required': 'Votre rôle dans ce groupe ne permet pas cette modification : demandez-la au propriétaire du groupe ou à un administrateur.',
  'unknown-member': 'Cette personne ne fait pas partie du groupe.',
  'already-member': 'Cette personne fait déjà partie du groupe.',
  'group-full': 'Ce groupe a atteint son nombre maximal de membres.',
  'stale-membership': 'Les membres du groupe ont changé pendant l’envoi. Réessayez.',
  // connection and service
  unavailable: 'Le service redémarre ou est indisponible ; nouvelle tentative automatique.',
  'internal-error': 'Le serveur a rencontré une erreur. Elle a été consignée ; réessayez.',
  'unsupported-version': 'Cette version de Lien n’est plus prise en charge : rechargez la page.',
  replaced: 'Cet appareil s’est connecté dans un autre onglet.',
  'too-slow': 'La connexion a pris du retard ; reconnexion en cours.',
  [NETWORK_ERROR]: 'Le serveur est injoignable. Vérifiez votre connexion ; nouvelle tentative automatique.',
  // on this device
  'wrong-password': 'Mot de passe incorrect : le coffre de clés de ce navigateur ne s’ouvre pas.',
  'keystore-corrupt': 'Le coffre de clés de ce navigateur est endommagé.',
  'identity-not-accepted': 'Les appareils de ce correspondant ont changé : vérifiez le numéro de sécurité, puis confirmez.',
  'message-too-large': 'Ce message est trop long.',
  'bad-prekey-signature': 'Les clés publiées par ce correspondant ne sont pas correctement signées.',
  'no-device': 'Ce correspondant n’a aucun appareil joignable.',
  'unknown-sender-key': 'Ce message de groupe utilise une clé que cet appareil n’a pas reçue ; son expéditeur va le renvoyer.',
  'invalid-distribution': 'La clé de groupe reçue d’un membre n’est pas valide.',
  'group-state-corrupt': 'Une clé de groupe enregistrée dans ce navigateur est endommagée.',
  'group-name-required': 'Donnez un nom au groupe.',
  'storage-unavailable': 'Ce navigateur ne permet pas de stocker les clés (navigation privée ?).',
  'password-too-short': 'Le mot de passe doit comporter au moins 10 caractères.',
  'invalid-username': 'L’identifiant : 3 à 32 caractères, minuscules, chiffres, « . », « _ » ou « - ».',
  'invalid-rpps': 'Le numéro RPPS compte 11 chiffres, le numéro ADELI 9.',
});

const FALLBACK = 'Une erreur est survenue ; réessayez.';

/** Plain words for any error: a LienError, a CryptoError, a network failure, anything else. */
export function userMessage(error) {
  if (error?.code === 'rate-limited' && error.retryAfter >= 1) {
    // Sign-in after too many wrong passwords waits up to a minute (protocol §4.4): say how long.
    return `Trop de tentatives ; réessayez dans ${Math.ceil(error.retryAfter)} s.`;
  }
  if (error instanceof LienError || error instanceof CryptoError || typeof error?.code === 'string') {
    return USER_MESSAGES[error.code] ?? (error instanceof CryptoError ? 'Le message n’a pas pu être déchiffré.' : FALLBACK);
  }
  if (error instanceof TypeError && /fetch|network/i.test(String(error.message))) {
    return USER_MESSAGES[NETWORK_ERROR];
  }
  return FALLBACK;
}
