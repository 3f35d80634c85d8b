"""The only code of ingest that talks to MongoDB: one module per collection, and the indexes they need."""

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import mongo

from . import stream_routes

INDEXES = {**stream_routes.INDEXES}


async def ensure_indexes(db: AsyncDatabase) -> None:
    await mongo.ensure_indexes(db, INDEXES)
