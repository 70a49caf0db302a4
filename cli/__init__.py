"""askwise: steerable clarification policies, served and trained.

The parts live in their own folders and install as one namespace:
`askwise.policy` (the contract), `askwise.server` (the gateway),
`askwise.training` (checkpoints), `askwise.client` (SDK and CLI chat).
"""

__version__ = "0.1.0"
