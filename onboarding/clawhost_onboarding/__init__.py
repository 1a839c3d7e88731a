"""The onboarding service: a LangChain agent that chats a person from "I want an agent" to a checkout."""
