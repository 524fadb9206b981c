"""The blinded reader-study web app: accounts, exam import, structured reads, export, agreement.

``create_app(ReaderSettings(...))`` builds the FastAPI application; ``nervemuscle serve`` runs it.
The app reads volumes and findings through the library and holds no analysis code.
"""
