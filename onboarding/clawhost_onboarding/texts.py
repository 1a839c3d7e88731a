"""The few messages the service writes itself (no model call): in the user's language where we have it, else English."""

from __future__ import annotations

_TEXTS: dict[str, dict[str, str]] = {
    "greeting": {
        "en": "Hi! I'll set up your own AI agent on Telegram with you: it takes a few short questions. "
        "What would you like your agent to help you with?",
        "de": "Hallo! Ich richte mit dir deinen eigenen KI-Agenten auf Telegram ein: ein paar kurze Fragen. "
        "Wobei soll dein Agent dir helfen?",
        "fr": "Bonjour ! Je configure avec vous votre propre agent IA sur Telegram : quelques questions courtes. "
        "Pour quoi voulez-vous que votre agent vous aide ?",
        "es": "¡Hola! Configuro contigo tu propio agente de IA en Telegram: son unas pocas preguntas. "
        "¿En qué quieres que te ayude tu agente?",
    },
    "checkout": {
        "en": "Here is your checkout link: {url}. Once payment is through, I'll start your agent and tell you here.",
        "de": "Hier ist dein Link zur Zahlung: {url}. Sobald sie durch ist, starte ich deinen Agenten und sage "
        "dir hier Bescheid.",
        "fr": "Voici votre lien de paiement : {url}. Dès que le paiement est passé, je démarre votre agent et vous "
        "préviens ici.",
        "es": "Aquí tienes tu enlace de pago: {url}. En cuanto se complete, arranco tu agente y te aviso aquí.",
    },
    "payment_received": {
        "en": "Payment received, thank you!",
        "de": "Zahlung erhalten, danke!",
        "fr": "Paiement reçu, merci !",
        "es": "Pago recibido, ¡gracias!",
    },
    "starting": {
        "en": "Starting your agent…",
        "de": "Dein Agent wird gestartet…",
        "fr": "Démarrage de votre agent…",
        "es": "Arrancando tu agente…",
    },
    "live": {
        "en": "Your agent is live: message @{bot} on Telegram.",
        "de": "Dein Agent läuft: schreib @{bot} auf Telegram.",
        "fr": "Votre agent est en ligne : écrivez à @{bot} sur Telegram.",
        "es": "Tu agente está en marcha: escribe a @{bot} en Telegram.",
    },
    "failed": {
        "en": "Your agent could not be started. Nothing more is charged until it runs; write to support@clawhost.dev "
        "and we will fix it, or open your dashboard to see what happened.",
        "de": "Dein Agent konnte nicht gestartet werden. Schreib an support@clawhost.dev, wir kümmern uns darum, "
        "oder sieh im Dashboard nach, was passiert ist.",
        "fr": "Votre agent n'a pas pu démarrer. Écrivez à support@clawhost.dev, nous nous en occupons, ou ouvrez "
        "votre tableau de bord pour voir ce qui s'est passé.",
        "es": "No se pudo arrancar tu agente. Escribe a support@clawhost.dev y lo arreglamos, o abre tu panel para "
        "ver qué pasó.",
    },
    "failed_because": {  # {reason}: the control API's (English) words on what went wrong, scrubbed of secrets
        "en": "{reason} If it stays like this, write to support@clawhost.dev.",
        "de": "Dein Agent läuft nicht: {reason} Wenn es so bleibt, schreib an support@clawhost.dev.",
        "fr": "Votre agent ne tourne pas : {reason} Si cela persiste, écrivez à support@clawhost.dev.",
        "es": "Tu agente no está en marcha: {reason} Si sigue así, escribe a support@clawhost.dev.",
    },
    "sign_in": {
        "en": "Everything is ready. Sign up or log in so the agent is created for your account.",
        "de": "Alles bereit. Registriere dich oder melde dich an, damit der Agent für dein Konto angelegt wird.",
        "fr": "Tout est prêt. Créez un compte ou connectez-vous pour que l'agent soit créé pour votre compte.",
        "es": "Todo listo. Regístrate o inicia sesión para que el agente se cree en tu cuenta.",
    },
}


def primary_language(tag: str | None) -> str:
    """`de-DE` -> `de`; anything unusable -> `en`."""
    primary = (tag or "en").split("-", 1)[0].split("_", 1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else "en"


def text(name: str, language: str | None, **values: str) -> str:
    variants = _TEXTS[name]
    return variants.get(primary_language(language), variants["en"]).format(**values)
