//! Hand-written OpenAPI 3.0 document of API v1, served at `/openapi.json`. A test
//! checks that its paths and methods equal [`crate::ROUTES`] and that each one routes.

use axum::Json;
use serde_json::{Value, json};

pub(crate) async fn serve() -> Json<Value> {
    Json(openapi_document())
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn job_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } }
    })
}

fn id_parameter() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } })
}

/// Builds the OpenAPI document.
pub fn openapi_document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "gridcast API",
            "version": "1",
            "description": "Batch forecast jobs over gridded datasets. Every error body is {\"error\": {\"code\", \"message\", \"field\"}}. With API keys required, /v1 requests carry `Authorization: Bearer KEY` and answer 401 without a valid key, 403 when the key's role (read, submit, admin) is too low, 429 with Retry-After past the key's rate limit, and 404 for another tenant's job. Any store outage answers 503 with Retry-After."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a forecast job",
                    "parameters": [{
                        "name": "Idempotency-Key", "in": "header", "required": false,
                        "description": "1 to 255 visible ASCII characters. A retry with the same key and body returns the same job with 200; a different body returns 409.",
                        "schema": { "type": "string" }
                    }],
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SubmitJob" } } }
                    },
                    "responses": {
                        "201": job_response("Job queued; the Location header contains its URL"),
                        "200": job_response("Same Idempotency-Key and body as an earlier submission: that job"),
                        "400": error_response("Malformed JSON or invalid header"),
                        "409": error_response("Idempotency-Key reused with a different body"),
                        "413": error_response("Body larger than the configured limit"),
                        "415": error_response("Content-Type is not application/json"),
                        "422": error_response("Missing, unknown or invalid field; `field` names it"),
                        "429": error_response("Queue full; retry after the Retry-After header's seconds")
                    }
                },
                "get": {
                    "summary": "List jobs, oldest first",
                    "parameters": [
                        { "name": "state", "in": "query", "schema": { "$ref": "#/components/schemas/JobState" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } },
                        { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": {
                            "description": "One page of jobs",
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobList" } } }
                        },
                        "400": error_response("Invalid state, limit or cursor, or an unknown parameter")
                    }
                }
            },
            "/v1/jobs/{id}": {
                "get": {
                    "summary": "Read one job",
                    "parameters": [id_parameter()],
                    "responses": {
                        "200": job_response("The job"),
                        "400": error_response("The id is not a UUID"),
                        "404": error_response("No job with this id")
                    }
                },
                "delete": {
                    "summary": "Cancel a job",
                    "parameters": [id_parameter()],
                    "responses": {
                        "200": job_response("Cancelled (it was queued, or already cancelled)"),
                        "202": job_response("Running; its worker stops it at the next rollout step"),
                        "400": error_response("The id is not a UUID"),
                        "404": error_response("No job with this id"),
                        "409": error_response("The job already succeeded or failed")
                    }
                }
            },
            "/v1/jobs/{id}/result": {
                "get": {
                    "summary": "Download a succeeded job's result",
                    "parameters": [
                        id_parameter(),
                        { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["netcdf", "json"], "default": "netcdf" } },
                        { "name": "variables", "in": "query", "description": "format=json: comma-separated variable names", "schema": { "type": "string" } },
                        { "name": "lead_hours", "in": "query", "description": "format=json: comma-separated lead times in hours", "schema": { "type": "string" } },
                        { "name": "bbox", "in": "query", "description": "format=json: SOUTH,NORTH,WEST,EAST in degrees", "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": {
                            "description": "The CF netCDF file, or JSON with format=json",
                            "content": {
                                "application/x-netcdf": { "schema": { "type": "string", "format": "binary" } },
                                "application/json": { "schema": { "type": "object" } }
                            }
                        },
                        "400": error_response("Invalid id or query parameter"),
                        "404": error_response("No job with this id"),
                        "409": error_response("The job has not succeeded"),
                        "501": error_response("format=json on an ensemble result")
                    }
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "List models, including the persistence and climatology baselines, and the model directories that failed to load",
                    "responses": { "200": { "description": "{\"models\": [...], \"unavailable\": [{\"id\", \"model_id\", \"error\"}]}", "content": { "application/json": { "schema": { "type": "object" } } } } }
                }
            },
            "/v1/datasets": {
                "get": {
                    "summary": "List datasets with grid, time axis and variables",
                    "responses": { "200": { "description": "{\"datasets\": [...]}", "content": { "application/json": { "schema": { "type": "object" } } } } }
                }
            },
            "/health": {
                "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "{\"status\": \"ok\"}" } } }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness of storage, queue and model catalog",
                    "security": [],
                    "responses": {
                        "200": { "description": "Ready" },
                        "503": { "description": "Not ready; the body lists the failing checks" }
                    }
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, text format",
                    "security": [],
                    "responses": { "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }
                }
            },
            "/openapi.json": {
                "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3 document" } } }
            }
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "API key from `gridcast keys create`" }
            }
        }
    })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field"],
                    "properties": {
                        "code": { "type": "string" },
                        "message": { "type": "string" },
                        "field": { "type": "string", "nullable": true }
                    }
                }
            }
        },
        "JobState": { "type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"] },
        "Region": {
            "type": "object",
            "additionalProperties": false,
            "required": ["south", "north", "west", "east"],
            "properties": {
                "south": { "type": "number", "description": "degrees north" },
                "north": { "type": "number", "description": "degrees north" },
                "west": { "type": "number", "description": "degrees east; west > east crosses the antimeridian" },
                "east": { "type": "number", "description": "degrees east" }
            }
        },
        "SubmitJob": {
            "type": "object",
            "additionalProperties": false,
            "required": ["dataset", "init_time", "lead_hours"],
            "properties": {
                "dataset": { "type": "string" },
                "model": { "type": "string", "description": "dataset default model when omitted" },
                "init_time": { "type": "string", "format": "date-time" },
                "lead_hours": { "type": "integer", "minimum": 1, "description": "multiple of the model step" },
                "region": { "$ref": "#/components/schemas/Region" },
                "variables": { "type": "array", "items": { "type": "string" } },
                "members": { "type": "integer", "default": 1 },
                "priority": { "type": "integer", "format": "int32", "default": 0, "description": "higher runs first" }
            }
        },
        "Job": {
            "type": "object",
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "state": { "$ref": "#/components/schemas/JobState" },
                "request": { "type": "object" },
                "priority": { "type": "integer" },
                "progress": {
                    "type": "object",
                    "properties": { "steps_done": { "type": "integer" }, "steps_total": { "type": "integer" } }
                },
                "attempts": { "type": "integer" },
                "max_attempts": { "type": "integer" },
                "cancel_requested": { "type": "boolean" },
                "worker": { "type": "string", "nullable": true },
                "device": { "type": "string", "nullable": true },
                "error": {
                    "type": "object", "nullable": true,
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } }
                },
                "created_at": { "type": "string", "format": "date-time" },
                "started_at": { "type": "string", "format": "date-time", "nullable": true },
                "finished_at": { "type": "string", "format": "date-time", "nullable": true },
                "updated_at": { "type": "string", "format": "date-time" },
                "next_attempt_at": { "type": "string", "format": "date-time", "nullable": true },
                "result": {
                    "type": "object", "nullable": true,
                    "properties": { "netcdf": { "type": "string" }, "json": { "type": "string" } }
                },
                "summary": { "type": "object", "nullable": true }
            }
        },
        "JobList": {
            "type": "object",
            "properties": {
                "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } },
                "next_cursor": { "type": "string", "nullable": true }
            }
        }
    })
}
