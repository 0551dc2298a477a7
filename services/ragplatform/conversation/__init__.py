"""The conversation service: threads of questions and answers, per tenant."""
